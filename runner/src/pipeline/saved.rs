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
use crate::util::hashing::{canonical_json, sha256_hex};

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

/// A plugin as the results depend on it: a fix in a selector (a new
/// version) must recompute the selection it made.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStamp {
    pub name: String,
    pub version: String,
    pub interface_version: u32,
}

/// Everything the saved results depend on, serialised canonically.
#[derive(Serialize)]
struct ResultsInputs<'a> {
    format: u32,
    /// The activations: the store key covers the model, the data (by full
    /// content) and the extraction settings.
    store_key: &'a str,
    task: &'a crate::spec::TaskSpec,
    probe: &'a crate::probe::ProbeSettings,
    seed: u64,
    selection: &'a crate::spec::SelectionSpec,
    control_task: bool,
    downstream: &'a Option<crate::downstream::DownstreamSpec>,
    in_memory_mb: usize,
    /// Every selector plugin the spec names, with its version.
    plugins: &'a [PluginStamp],
}

/// What the saved results depend on besides the activations.
pub fn results_fingerprint(
    loaded: &LoadedSpec,
    store_key: &str,
    plugins: &[PluginStamp],
    in_memory_mb: usize,
) -> Result<String> {
    let spec = &loaded.spec;
    let inputs = ResultsInputs {
        format: RESULTS_FORMAT,
        store_key,
        task: &spec.data.task,
        probe: &spec.probe,
        seed: spec.seed,
        selection: &spec.selection,
        control_task: spec.control_task,
        downstream: &spec.downstream,
        in_memory_mb,
        plugins,
    };
    Ok(sha256_hex(&canonical_json(&inputs)?))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedSpec {
        let spec = crate::spec::parse_spec_text(text).unwrap();
        LoadedSpec {
            path: "spec.yaml".into(),
            base_dir: ".".into(),
            spec,
            text: text.to_string(),
        }
    }

    const SPEC: &str = "output: out
model: {backend: candle, path: m}
data: {task: tagging, reader: {format: word-tag}, train: a, dev: b, test: c}
selection:
  ranking: {selector: elastic-net, params: {stride: 1000, l1: 0.001}}
";

    fn stamp(version: &str) -> Vec<PluginStamp> {
        vec![PluginStamp {
            name: "elastic-net".into(),
            version: version.into(),
            interface_version: 2,
        }]
    }

    /// The bug this guards: after a selector plugin was fixed (a new
    /// version), a rerun silently reused the old plugin's selection.
    #[test]
    fn a_new_selector_version_changes_the_results_fingerprint() {
        let spec = loaded(SPEC);
        let old = results_fingerprint(&spec, "key", &stamp("0.1.0"), 2048).unwrap();
        let new = results_fingerprint(&spec, "key", &stamp("0.1.1"), 2048).unwrap();
        assert_ne!(old, new);
    }

    #[test]
    fn changed_activations_or_settings_change_the_results_fingerprint() {
        let spec = loaded(SPEC);
        let base = results_fingerprint(&spec, "key", &stamp("0.1.0"), 2048).unwrap();
        let other_store = results_fingerprint(&spec, "key2", &stamp("0.1.0"), 2048).unwrap();
        let other_budget = results_fingerprint(&spec, "key", &stamp("0.1.0"), 512).unwrap();
        let other_param = loaded(&SPEC.replace("l1: 0.001", "l1: 0.002"));
        let other_param = results_fingerprint(&other_param, "key", &stamp("0.1.0"), 2048).unwrap();
        assert_ne!(base, other_store);
        assert_ne!(base, other_budget);
        assert_ne!(base, other_param);
    }

    #[test]
    fn a_default_written_out_gives_the_same_fingerprint_as_one_left_out() {
        let a = loaded(&format!("{SPEC}  top_n: {{delta: 1.0}}\n"));
        let b = loaded(&format!("{SPEC}  top_n: {{}}\n"));
        assert_eq!(
            results_fingerprint(&a, "key", &stamp("0.1.0"), 2048).unwrap(),
            results_fingerprint(&b, "key", &stamp("0.1.0"), 2048).unwrap()
        );
    }

    /// Keys are canonical: the order of a mapping's keys in the YAML does
    /// not change them (they were `Debug` text before).
    #[test]
    fn the_order_of_parameters_in_the_spec_does_not_change_the_fingerprint() {
        let a = loaded(SPEC);
        let b = loaded(&SPEC.replace("{stride: 1000, l1: 0.001}", "{l1: 0.001, stride: 1000}"));
        assert_eq!(
            results_fingerprint(&a, "key", &stamp("0.1.0"), 2048).unwrap(),
            results_fingerprint(&b, "key", &stamp("0.1.0"), 2048).unwrap()
        );
    }
}
