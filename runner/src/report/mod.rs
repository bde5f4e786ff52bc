//! A run's results: `report.json` for machines, `report.md` for people.
//!
//! `report.json` is described field by field, with units, by
//! `docs/report.schema.json`: every score, share and tolerance in it is a
//! fraction (0.93, not 93), and its layout has a version
//! ([`REPORT_FORMAT`]).

mod json;
mod markdown;
mod plots;

pub use json::{removed_fraction, ClusteringSummary, LayerSelectorSummary, SelectionSummary};
pub use markdown::render_markdown;
pub use plots::{find_font, write_plots};

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::pipeline::layers::LayerScores;
use crate::pipeline::probing::Score;
use crate::pipeline::selection::{RankerCurve, SelectionTimings};
use crate::probe::ProbeSettings;
use crate::util::atomic::write_atomic;

/// The layout version of `report.json` (its `report_format` field); bumped
/// when a field changes name, meaning or unit. 2: structured `probe`, every
/// share and tolerance a fraction.
pub const REPORT_FORMAT: u32 = 2;

/// Everything `report.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub spec: String,
    pub seed: u64,
    pub model: ModelSummary,
    pub data: DataSummary,
    /// `accuracy` (classification, tagging) or `pearson` (regression).
    pub metric: String,
    /// The probe solver and its settings, as the spec's `probe:` section
    /// with every default filled in.
    pub probe: ProbeSettings,
    /// Accuracy of always answering train's most frequent class.
    pub majority_baseline: Option<Score>,
    pub oracle: OracleSummary,
    pub layers: Vec<LayerRow>,
    pub extraction: ExtractionSummary,
    /// LayerSelector's choice, when the spec asks for it.
    pub layer_selector: Option<LayerSelectorSummary>,
    /// After correlation clustering (or another filter).
    pub clustering: Option<ClusteringSummary>,
    /// The final top-N selection (CCFS).
    pub selection: Option<SelectionSummary>,
    /// Rankers compared on the same columns (`selection.compare`).
    pub comparison: Vec<RankerCurve>,
    /// Control task (Hewitt & Liang) and selectivity, when asked for.
    pub control: Option<crate::pipeline::control::ControlSummary>,
    /// Downstream classifiers on the selected features, when asked for.
    pub downstream: Option<crate::pipeline::downstream::DownstreamSummary>,
    /// True when probe scores and selection came from an earlier run's
    /// `results.json` (same activations and settings).
    pub results_reused: bool,
    /// Chart files written next to the report (SVG and PNG).
    pub plots: Vec<String>,
    pub warnings: Vec<String>,
    pub timings: Timings,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub name: String,
    pub backend: String,
    pub backend_version: String,
    pub architecture: String,
    /// Hidden states: the embeddings plus every encoder layer.
    pub layers: u32,
    pub encoder_layers: u32,
    pub hidden: u32,
    /// layers x hidden: the oracle's feature count.
    pub features: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub task: String,
    pub files: Vec<String>,
    pub classes: usize,
    pub train_rows: usize,
    pub dev_rows: usize,
    pub test_rows: usize,
    /// Dev/test labels never seen in train (always counted wrong).
    pub unseen_labels: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OracleSummary {
    pub features: usize,
    pub dev: f64,
    pub test: f64,
}

/// One line of the per-layer table.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub k: u32,
    /// `None`: the probe was not trained (LayerSelector's early stop or
    /// `single_layers: false`).
    pub single_dev: Option<f64>,
    pub single_test: Option<f64>,
    pub cumulative_dev: Option<f64>,
    pub cumulative_test: Option<f64>,
}

impl From<&LayerScores> for LayerRow {
    fn from(scores: &LayerScores) -> Self {
        LayerRow {
            k: scores.k,
            single_dev: scores.single.map(|s| s.dev),
            single_test: scores.single.map(|s| s.test),
            cumulative_dev: scores.cumulative.map(|s| s.dev),
            cumulative_test: scores.cumulative.map(|s| s.test),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExtractionSummary {
    /// True when the activations came from an earlier run's store entry.
    pub reused: bool,
    pub store: String,
    pub subword_tokens: u64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub windowed_units: u64,
}

/// Seconds per stage of this run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub load_plugins: f64,
    pub read_data: f64,
    pub extraction: f64,
    pub layer_probes: f64,
    /// Stages after the layer probes (zero when skipped or reused).
    pub selection: SelectionTimings,
    /// Downstream classifiers (zero when skipped or reused).
    pub downstream: f64,
    pub total: f64,
}

/// `report.json`'s content: the format version, then the report.
#[derive(Serialize)]
struct ReportFile<'a> {
    report_format: u32,
    #[serde(flatten)]
    report: &'a Report,
}

/// The text of `report.json`.
pub fn report_json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(&ReportFile {
        report_format: REPORT_FORMAT,
        report,
    })?)
}

/// Writes `report.json` and `report.md` into `dir`, each atomically.
pub fn write_report(dir: &Path, report: &Report) -> Result<()> {
    let json = report_json(report)?;
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    write_atomic(&dir.join("report.md"), render_markdown(report).as_bytes())?;
    Ok(())
}
