//! Sieve selector plugin `elastic-net`: ranks neurons by a probe's weights.
//!
//! The paper's task-specific ranking (METHOD.md, "Ranking by the
//! elastic-net probe"): the host trains its linear probe on the input's
//! training rows (the elastic-net penalty comes from the spec's probe
//! settings), and the NeuroX sweep over fractions of each class's weight
//! mass orders the neurons ([`ordering`]). The answer is a ranking of every
//! column with the sweep's cutoffs and each column's weight mass as score.
//!
//! Parameters (JSON object; `{}` gives the defaults):
//! - `stride` (default 1000, the paper's; NeuroX's default is 100): the
//!   sweep visits `p = i / stride`, `i = 0..=stride`;
//! - `probe` (object, default `{}`): overrides of the spec's probe settings,
//!   passed to the host unchanged (e.g. `{"l1": 1e-3, "l2": 0}` for lasso).

pub mod ordering;

use abi_stable::std_types::RStr;
use serde::Deserialize;
use serde_json::{Map, Value};
use sieve_core::{
    ProbeHostRef, ProbeWeights, Selection, SelectionKind, SelectorInput, SelectorPlugin,
};

pub use ordering::{neuron_ordering, top_neurons, weight_mass, NeuronOrdering, Weights};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "elastic-net";

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub stride: u32,
    /// Probe setting overrides, handed to the host as JSON.
    pub probe: Map<String, Value>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            stride: 1000,
            probe: Map::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    stride: Option<u32>,
    probe: Option<Value>,
}

impl Params {
    /// Parses the JSON object the host passes; errors name the plugin.
    pub fn from_json(json: &str) -> Result<Params, String> {
        Self::parse(json).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }

    fn parse(json: &str) -> Result<Params, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawParams = sieve_core::parse_params(json)?;
        let stride = raw.stride.unwrap_or(1000);
        if stride == 0 {
            return Err(sieve_core::param_error("stride", "must be at least 1"));
        }
        let probe = match raw.probe {
            None => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(format!(
                    "probe must be an object of probe settings, got {other}"
                ))
            }
        };
        Ok(Params { stride, probe })
    }
}

/// The `elastic-net` selector.
pub struct ElasticNetSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<ElasticNetSelector, String> {
    Params::from_json(params_json).map(|params| ElasticNetSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

impl SelectorPlugin for ElasticNetSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        let probe = self
            .train(input, host)
            .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))?;
        let weights = Weights::new(
            &probe.weights,
            probe.outputs as usize,
            probe.features as usize,
        )
        .ok_or_else(|| format!("selector '{PLUGIN_NAME}': probe weights have the wrong length"))?;
        let ranked = neuron_ordering(&weights, self.params.stride);
        Ok(Selection {
            kind: SelectionKind::Ranking,
            notes: describe(&ranked, &probe, self.params.stride).into(),
            order: ranked.order.into(),
            cutoffs: ranked.cutoffs.into(),
            scores: ranked.mass.iter().map(|&m| m as f32).collect(),
        })
    }
}

impl ElasticNetSelector {
    /// Trains the host's probe on the training rows and checks its answer.
    fn train(
        &self,
        input: &SelectorInput<'_>,
        host: &ProbeHostRef<'_>,
    ) -> Result<ProbeWeights, String> {
        if input.train.cols() == 0 {
            return Err("the training matrix has no columns".into());
        }
        let settings = Value::Object(self.params.probe.clone()).to_string();
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
        check_probe(&probe, input.train.cols())?;
        Ok(probe)
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

/// The line the host logs.
fn describe(ranked: &NeuronOrdering, probe: &ProbeWeights, stride: u32) -> String {
    let total = ranked.order.len();
    format!(
        "{total} neurons ranked by the weight-mass sweep (stride {stride}, {} outputs); \
         {} reached, {} without weight appended; probe: {}",
        probe.outputs,
        ranked.reached,
        total - ranked.reached,
        probe.solver
    )
}

sieve_core::export_selector_plugin!(
    name: "elastic-net",
    description: "Neuron ranking by an elastic-net probe's weight mass (NeuroX ordering, \
                  Dalvi et al. 2020)",
    open: open,
    validate: validate,
);
