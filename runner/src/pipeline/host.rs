//! The probe service the runner lends to selector plugins.
//!
//! A ranker such as elastic-net needs a trained probe; rather than link a
//! second solver into every plugin, the host trains it with the spec's
//! settings, optionally overridden per call.

use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use sieve_core::{MatrixView, ProbeHost, ProbeWeights};

use super::shared_probes::SharedProbes;
use crate::probe::{train_probe, ProbeSettings, Task, TrainedProbe};

/// Trains probes for selectors with the spec's settings and seed.
pub struct HostProbe<'a> {
    pub settings: ProbeSettings,
    pub seed: u64,
    pub regression: bool,
    /// Where a probe another stage also trains is kept, if anywhere.
    pub shared: Option<SharedInput<'a>>,
}

/// The selector's input as columns of the train split (every row): a
/// request for a probe on exactly this matrix, these labels and targets
/// (the same memory, as lent) with the host's own settings is the probe
/// of those columns in `probes`.
pub struct SharedInput<'a> {
    pub probes: &'a SharedProbes,
    pub columns: &'a [usize],
    pub x: &'a [f32],
    pub labels: &'a [u32],
    pub targets: &'a [f32],
    pub task: Task,
}

impl SharedInput<'_> {
    fn lent(&self, x: &[f32], labels: &[u32], targets: &[f32]) -> bool {
        same_memory(x, self.x)
            && same_memory(labels, self.labels)
            && same_memory(targets, self.targets)
    }
}

/// The same slice of memory (an empty slice's address means nothing: the
/// plugin ABI may hand back another one).
fn same_memory<T>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && (a.is_empty() || std::ptr::eq(a.as_ptr(), b.as_ptr()))
}

impl HostProbe<'_> {
    /// The spec's settings with the selector's overrides applied; an
    /// unknown or mistyped override is an error, as in a spec.
    fn settings_with(&self, overrides_json: &str) -> Result<ProbeSettings, String> {
        let overrides: serde_json::Value = serde_json::from_str(overrides_json)
            .map_err(|e| format!("probe settings from the selector are not JSON: {e}"))?;
        let mut merged = serde_json::to_value(&self.settings).map_err(|e| e.to_string())?;
        if let (Some(base), Some(extra)) = (merged.as_object_mut(), overrides.as_object()) {
            for (key, value) in extra {
                base.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(merged).map_err(|e| format!("probe settings from the selector: {e}"))
    }

    fn train(
        &self,
        x: &MatrixView<'_>,
        labels: &[u32],
        targets: &[f32],
        num_classes: u32,
        overrides_json: &str,
    ) -> Result<ProbeWeights, String> {
        let settings = self.settings_with(overrides_json)?;
        let task = if self.regression {
            Task::Regression
        } else {
            Task::Classification {
                num_classes: num_classes as usize,
            }
        };
        let train = || -> anyhow::Result<TrainedProbe> {
            Ok(train_probe(
                x.data.as_slice(),
                x.rows as usize,
                x.cols as usize,
                labels,
                targets,
                task,
                &settings,
                self.seed,
            )?)
        };
        let probe = match &self.shared {
            Some(shared)
                if settings == self.settings
                    && task == shared.task
                    && shared.lent(x.data.as_slice(), labels, targets) =>
            {
                shared.probes.get_or_train(shared.columns, train)
            }
            _ => train(),
        }
        .map_err(|e| format!("{e:#}"))?;
        Ok(ProbeWeights {
            weights: probe.weights.clone().into(),
            bias: probe.bias.clone().into(),
            outputs: probe.outputs as u32,
            features: probe.features as u32,
            solver: probe.solver_note.clone().into(),
        })
    }
}

impl ProbeHost for HostProbe<'_> {
    fn train_probe(
        &self,
        x: MatrixView<'_>,
        labels: RSlice<'_, u32>,
        targets: RSlice<'_, f32>,
        num_classes: u32,
        settings_json: RStr<'_>,
    ) -> RResult<ProbeWeights, RString> {
        self.train(
            &x,
            labels.as_slice(),
            targets.as_slice(),
            num_classes,
            settings_json.as_str(),
        )
        .map_err(RString::from)
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 rows, 3 columns, 2 classes that column 0 separates.
    fn data() -> (Vec<f32>, Vec<u32>) {
        let labels: Vec<u32> = (0..40).map(|r| r % 2).collect();
        let x = labels
            .iter()
            .enumerate()
            .flat_map(|(r, &y)| [y as f32 * 2.0 - 1.0, (r % 5) as f32 * 0.1, 0.3])
            .collect();
        (x, labels)
    }

    #[test]
    fn a_request_on_the_lent_input_with_the_hosts_settings_is_the_shared_probe() {
        let (x, labels) = data();
        let probes = SharedProbes::default();
        let columns = [2usize, 5, 9];
        // What another stage already trained for these columns: marked so
        // that a fresh training cannot be mistaken for it.
        let mut marked = train_probe(
            &x,
            40,
            3,
            &labels,
            &[],
            Task::Classification { num_classes: 2 },
            &ProbeSettings::default(),
            7,
        )
        .unwrap();
        marked.solver_note = "shared".into();
        probes
            .get_or_train(&columns, || Ok(marked.clone()))
            .unwrap();
        let host = HostProbe {
            settings: ProbeSettings::default(),
            seed: 7,
            regression: false,
            shared: Some(SharedInput {
                probes: &probes,
                columns: &columns,
                x: &x,
                labels: &labels,
                targets: &[],
                task: Task::Classification { num_classes: 2 },
            }),
        };
        let view = MatrixView::new(&x, 40, 3).unwrap();
        let shared = host.train(&view, &labels, &[], 2, "{}").unwrap();
        assert_eq!(shared.solver.as_str(), "shared");
        assert_eq!(shared.weights.as_slice(), marked.weights.as_slice());
        // Other settings, or a copy of the rows: a probe of its own.
        let own = host
            .train(&view, &labels, &[], 2, r#"{"l1": 0.001}"#)
            .unwrap();
        assert_ne!(own.solver.as_str(), "shared");
        let copy = x.clone();
        let copied = MatrixView::new(&copy, 40, 3).unwrap();
        let own = host.train(&copied, &labels, &[], 2, "{}").unwrap();
        assert_ne!(own.solver.as_str(), "shared");
        // ... which equals the shared one where it was trained the same way.
        assert_eq!(own.weights.as_slice(), marked.weights.as_slice());
    }
}
