//! `results.json`: a run's probe scores and selection, saved so that a
//! later run with the same activations and settings (or `sieve export`)
//! reuses them instead of training every probe again.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::probe::TrainedProbe;
use crate::spec::LoadedSpec;
use crate::util::atomic::write_atomic;
use crate::util::hashing::sha256_hex;

use super::control::ControlSummary;
use super::downstream::DownstreamSummary;
use super::layers::LayerScores;
use super::selection::SelectionOutcome;

/// Bumped when the file's meaning changes; older files are recomputed.
const RESULTS_FORMAT: u32 = 1;

pub const RESULTS_FILE: &str = "results.json";

/// Everything after extraction that a rerun would otherwise recompute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedResults {
    pub format: u32,
    /// Identifies the activations, probe settings, seed and selection spec.
    pub fingerprint: String,
    /// The activation store entry these results were computed from.
    pub store_key: String,
    /// Class names in label-index order (the probe's outputs).
    pub classes: Vec<String>,
    pub hidden: usize,
    pub layers: Vec<LayerScores>,
    pub outcome: SelectionOutcome,
    /// Control-task scores, when the spec asks for them.
    #[serde(default)]
    pub control: Option<ControlSummary>,
    /// Downstream classifiers' scores, when the spec asks for them.
    #[serde(default)]
    pub downstream: Option<DownstreamSummary>,
    /// The oracle probe (every feature of every hidden state; the last
    /// cumulative probe of `layers`), for `sieve export`. Absent in files
    /// written before it was saved; the scores do not depend on it, so
    /// such files are still reused.
    #[serde(default)]
    pub oracle_probe: Option<TrainedProbe>,
}

/// What the saved results depend on besides the activations.
pub fn results_fingerprint(loaded: &LoadedSpec, store_key: &str) -> String {
    let spec = &loaded.spec;
    sha256_hex(&format!(
        "format={RESULTS_FORMAT} store={store_key} task={:?} probe={:?} seed={} selection={:?} control={} downstream={:?} in_memory_mb={}",
        spec.data.task, spec.probe, spec.seed, spec.selection, spec.control_task, spec.downstream, spec.store.in_memory_mb
    ))
}

impl SavedResults {
    pub fn new(
        fingerprint: String,
        store_key: String,
        classes: Vec<String>,
        hidden: usize,
        layers: Vec<LayerScores>,
        outcome: SelectionOutcome,
    ) -> Self {
        Self {
            format: RESULTS_FORMAT,
            fingerprint,
            store_key,
            classes,
            hidden,
            layers,
            outcome,
            control: None,
            downstream: None,
            oracle_probe: None,
        }
    }

    /// Store columns of the final selection's neurons, most important
    /// first (`None` without a selection).
    pub fn selected_columns(&self) -> Option<Vec<usize>> {
        let selection = self.outcome.selection.as_ref()?;
        Some(
            selection
                .neurons
                .iter()
                .map(|&[layer, neuron]| layer as usize * self.hidden + neuron as usize)
                .collect(),
        )
    }

    /// Reads `dir/results.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(RESULTS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}; run `sieve run` first", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged ({}); run `sieve run` again to recompute it",
                path.display(),
                "not valid results JSON"
            )
        })
    }

    /// The saved results in `dir` when they match `fingerprint`; a damaged
    /// or stale file is ignored (and recomputed) with a warning.
    pub fn matching(dir: &Path, fingerprint: &str) -> Option<Self> {
        if !dir.join(RESULTS_FILE).exists() {
            return None;
        }
        match Self::read(dir) {
            Ok(saved) if saved.format == RESULTS_FORMAT && saved.fingerprint == fingerprint => {
                Some(saved)
            }
            Ok(_) => None,
            Err(error) => {
                warn!("{error:#}");
                None
            }
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string(self)?;
        write_atomic(&dir.join(RESULTS_FILE), json.as_bytes())
    }
}
