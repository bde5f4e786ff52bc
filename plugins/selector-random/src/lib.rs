//! Sieve selector plugin `random`: a seeded random ranking (baseline).
//!
//! The control of METHOD.md's "Alternative rankers": every column once, in
//! an order drawn by a Fisher-Yates shuffle driven by SplitMix64. The same
//! seed gives the same order on every platform; the run's seed is used
//! unless the parameters give one. No scores (they would be meaningless).
//!
//! Works for classification and regression alike (it ignores the data).
//!
//! Parameters (JSON object; `{}` gives the defaults):
//! - `seed` (unsigned integer, default: the run's seed): draws another
//!   random ranking without changing the run's seed (e.g. to average
//!   several random baselines).

use serde::Deserialize;
use sieve_core::{ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "random";

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params {
    /// Replaces the run's seed when set.
    pub seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    seed: Option<u64>,
}

impl Params {
    /// Parses the JSON object the host passes; errors name the plugin.
    pub fn from_json(json: &str) -> Result<Params, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawParams =
            sieve_core::parse_params(json).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))?;
        Ok(Params { seed: raw.seed })
    }
}

/// The seeded generator (SplitMix64) comes from core, shared by every plugin.
pub use sieve_core::SplitMix64;

/// A random permutation of `0..n`, a function of `seed` alone.
pub fn shuffled(n: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// The `random` selector.
#[derive(Debug)]
pub struct RandomSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<RandomSelector, String> {
    Params::from_json(params_json).map(|params| RandomSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

impl SelectorPlugin for RandomSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        let cols = input.train.cols();
        if cols == 0 {
            return Err(format!(
                "selector '{PLUGIN_NAME}': the training matrix has no columns"
            ));
        }
        let (seed, source) = match self.params.seed {
            Some(seed) => (seed, "parameter"),
            None => (input.seed, "run"),
        };
        Ok(Selection {
            kind: SelectionKind::Ranking,
            order: shuffled(cols, seed).into(),
            cutoffs: Vec::new().into(),
            scores: Vec::new().into(),
            notes: format!("{cols} neurons in random order ({source} seed {seed})").into(),
        })
    }
}

sieve_core::export_selector_plugin!(
    name: "random",
    description: "Random neuron ranking: a seeded shuffle (baseline)",
    open: open,
    validate: validate,
);
