//! Sieve selector plugin `lasso`: ranks neurons by a lasso probe's weights.
//!
//! METHOD.md, "Alternative rankers" (Lasso, bottom): the host trains its
//! linear probe on the input's training rows with the spec's probe settings
//! overridden by `{"l1": <l1>, "l2": 0.0}` (a pure L1 penalty), and every
//! neuron `j` is scored by its weight mass `sum_c |W[c, j]|` over the
//! probe's outputs (classes, or the one regression output). Heaviest first;
//! ties go to the lower column index.
//!
//! With `reverse: true` the ranking is exactly reversed (lightest first):
//! the "bottom" baseline, which shows how little the neurons a probe ignores
//! carry.
//!
//! Unlike `elastic-net` there is no NeuroX per-class sweep: one global
//! ordering by mass, as NeuroX's lasso/bottom baselines.
//!
//! Parameters (JSON object; `{}` gives the defaults):
//! - `l1` (number >= 0, default 1e-4): the probe's L1 strength;
//! - `reverse` (bool, default false): lightest first (bottom baseline).

use abi_stable::std_types::RStr;
use serde::Deserialize;
use sieve_core::{
    ProbeHostRef, ProbeWeights, Selection, SelectionKind, SelectorInput, SelectorPlugin,
};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "lasso";

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub l1: f64,
    pub reverse: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            l1: 1e-4,
            reverse: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    l1: Option<f64>,
    reverse: Option<bool>,
}

impl Params {
    /// Parses the JSON object the host passes; errors name the plugin.
    pub fn from_json(json: &str) -> Result<Params, String> {
        Self::parse(json).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }

    fn parse(json: &str) -> Result<Params, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawParams = sieve_core::parse_params(json)?;
        let defaults = Params::default();
        let l1 = raw.l1.unwrap_or(defaults.l1);
        if !(l1.is_finite() && l1 >= 0.0) {
            return Err(format!("l1 must be a number >= 0, got {l1}"));
        }
        Ok(Params {
            l1,
            reverse: raw.reverse.unwrap_or(defaults.reverse),
        })
    }

    /// The probe setting overrides handed to the host.
    pub fn probe_overrides(&self) -> String {
        serde_json::json!({"l1": self.l1, "l2": 0.0}).to_string()
    }
}

/// `sum_c |W[c, j]|` for every feature `j` of row-major `[outputs, features]`
/// weights, in f64.
pub fn weight_mass(weights: &[f32], outputs: usize, features: usize) -> Vec<f64> {
    let mut mass = vec![0.0f64; features];
    for c in 0..outputs {
        for (m, &w) in mass
            .iter_mut()
            .zip(&weights[c * features..(c + 1) * features])
        {
            *m += f64::from(w.abs());
        }
    }
    mass
}

/// Columns by mass descending (ties: lower index); `reverse` gives the
/// exact reverse of that order.
pub fn rank_by_mass(mass: &[f64], reverse: bool) -> Vec<u32> {
    let mut order: Vec<u32> = (0..mass.len() as u32).collect();
    order.sort_by(|&a, &b| {
        mass[b as usize]
            .total_cmp(&mass[a as usize])
            .then(a.cmp(&b))
    });
    if reverse {
        order.reverse();
    }
    order
}

/// The `lasso` selector.
#[derive(Debug)]
pub struct LassoSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<LassoSelector, String> {
    Params::from_json(params_json).map(|params| LassoSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

impl SelectorPlugin for LassoSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        self.rank(input, host)
            .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }
}

impl LassoSelector {
    fn rank(
        &self,
        input: &SelectorInput<'_>,
        host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        let cols = input.train.cols();
        if cols == 0 {
            return Err("the training matrix has no columns".into());
        }
        let settings = self.params.probe_overrides();
        let probe = host
            .train_probe(
                input.train,
                input.train_labels,
                input.train_targets,
                input.num_classes,
                RStr::from_str(&settings),
            )
            .into_result()
            .map_err(|e| format!("probe training failed: {e}"))?;
        check_probe(&probe, cols)?;
        let mass = weight_mass(&probe.weights, probe.outputs as usize, cols);
        let zero = mass.iter().filter(|&&m| m == 0.0).count();
        let order = rank_by_mass(&mass, self.params.reverse);
        let scores = order.iter().map(|&j| mass[j as usize] as f32).collect();
        let direction = if self.params.reverse {
            "ascending (bottom baseline)"
        } else {
            "descending"
        };
        Ok(Selection {
            kind: SelectionKind::Ranking,
            notes: format!(
                "{cols} neurons ranked by lasso weight mass, {direction}; l1 {}, {zero} without \
                 weight; probe: {}",
                self.params.l1, probe.solver
            )
            .into(),
            order: order.into(),
            cutoffs: Vec::new().into(),
            scores,
        })
    }
}

/// The host's probe must cover every column with finite weights.
fn check_probe(probe: &ProbeWeights, columns: usize) -> Result<(), String> {
    if probe.features as usize != columns {
        return Err(format!(
            "the probe has weights for {} features, the input has {columns}",
            probe.features
        ));
    }
    if probe.outputs == 0 || probe.weights.len() != probe.outputs as usize * columns {
        return Err(format!(
            "the probe returned {} weights for {} outputs x {columns} features",
            probe.weights.len(),
            probe.outputs
        ));
    }
    match probe.weights.iter().position(|w| !w.is_finite()) {
        Some(at) => Err(format!(
            "probe weight [{}, {}] is {} (training diverged?)",
            at / columns,
            at % columns,
            probe.weights[at]
        )),
        None => Ok(()),
    }
}

sieve_core::export_selector_plugin!(
    name: "lasso",
    description: "Neuron ranking by the weight mass of an L1-only probe (lasso); \
                  reverse: true gives the bottom baseline",
    open: open,
    validate: validate,
);
