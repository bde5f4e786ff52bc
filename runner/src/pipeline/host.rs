//! The probe service the runner lends to selector plugins.
//!
//! A ranker such as elastic-net needs a trained probe; rather than link a
//! second solver into every plugin, the host trains it with the spec's
//! settings, optionally overridden per call.

use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use sieve_core::{MatrixView, ProbeHost, ProbeWeights};

use crate::probe::{train_probe, ProbeSettings, Task};

/// Trains probes for selectors with the spec's settings and seed.
pub struct HostProbe {
    pub settings: ProbeSettings,
    pub seed: u64,
    pub regression: bool,
}

impl HostProbe {
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
        let probe = train_probe(
            x.data.as_slice(),
            x.rows as usize,
            x.cols as usize,
            labels,
            targets,
            task,
            &settings,
            self.seed,
        )
        .map_err(|e| e.to_string())?;
        Ok(ProbeWeights {
            weights: probe.weights.clone().into(),
            bias: probe.bias.clone().into(),
            outputs: probe.outputs as u32,
            features: probe.features as u32,
            solver: probe.solver_note.clone().into(),
        })
    }
}

impl ProbeHost for HostProbe {
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
