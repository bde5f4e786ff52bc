//! Sieve selector plugin `correlation`: removes redundant neurons.
//!
//! The paper's correlation clustering (METHOD.md, "Correlation clustering"):
//! Pearson correlation between every pair of columns of the training
//! activations, distance `1 - |r|` (anti-correlated neurons are redundant
//! too), agglomerative clustering with average linkage, a flat cut at
//! distance `threshold` as SciPy's `fcluster(criterion="distance")`, and one
//! representative per cluster. The answer is a filter: the representatives,
//! ascending.
//!
//! Parameters (JSON object; `{}` gives the defaults):
//! - `threshold` (default 0.3, the paper's; NeuroX uses 0.5),
//! - `linkage`: `average` (default), `single`, `complete`, `weighted`,
//! - `representative`: `random` (default, seeded by the input's seed, as
//!   the paper picks at random), `medoid` or `first`.
//!
//! The pieces are public for tests and other tools: [`correlation`]
//! (correlation and distances through one GEMM), [`cluster`] (linkage and
//! flat cut), [`representative`].

pub mod cluster;
pub mod condensed;
pub mod correlation;
pub mod representative;

use serde::Deserialize;
use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin,
};

pub use cluster::{flat_clusters, linkage, members_by_label, Linkage, Merge};
pub use condensed::Condensed;
pub use correlation::{correlation_distances, correlation_matrix, CorrelationDistances};
pub use representative::Representative;

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "correlation";

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub threshold: f64,
    pub linkage: Linkage,
    pub representative: Representative,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            threshold: 0.3,
            linkage: Linkage::Average,
            representative: Representative::Random,
        }
    }
}

/// The parameters as written in a spec, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    threshold: Option<f64>,
    linkage: Option<String>,
    representative: Option<String>,
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
        let threshold = raw.threshold.unwrap_or(defaults.threshold);
        // Distances 1 - |r| lie in [0, 1]: any cut at 1 or above puts every
        // neuron in one cluster, and one far outside [0, 2] is a typo.
        if !(0.0..=2.0).contains(&threshold) {
            return Err(sieve_core::param_error(
                "threshold",
                format!(
                    "must be a distance in [0, 2] (1 - |r|, the paper uses 0.3), got {threshold}; \
                     at 1 or more every neuron falls into one cluster"
                ),
            ));
        }
        Ok(Params {
            threshold,
            linkage: raw.linkage.map_or(Ok(defaults.linkage), |s| s.parse())?,
            representative: raw
                .representative
                .map_or(Ok(defaults.representative), |s| s.parse())?,
        })
    }
}

/// The outcome of clustering the columns of a matrix.
#[derive(Clone, Debug)]
pub struct Clustering {
    /// Flat cluster label of every column (`0..k`, by lowest member).
    pub labels: Vec<u32>,
    /// Members of each cluster, ascending.
    pub clusters: Vec<Vec<u32>>,
    /// The chosen member of each cluster, in cluster order.
    pub representatives: Vec<u32>,
    /// Columns the near-constant rule treated as uncorrelated.
    pub near_constant: Vec<usize>,
}

/// Clusters the columns of `x` and picks one representative per cluster.
/// Deterministic for a given `seed`.
pub fn cluster_columns(x: &MatrixView<'_>, params: &Params, seed: u64) -> Clustering {
    let CorrelationDistances {
        mut distances,
        near_constant,
    } = correlation_distances(x);
    // kodama overwrites the distances it clusters; only the medoid needs
    // them afterwards, so only then is the copy worth its memory.
    let merges = match params.representative {
        Representative::Medoid => linkage(&mut distances.clone(), params.linkage),
        _ => linkage(&mut distances, params.linkage),
    };
    let labels = flat_clusters(&merges, x.cols(), params.threshold);
    let clusters = members_by_label(&labels);
    let representatives = match params.representative {
        Representative::Random => representative::random_representatives(&clusters, seed),
        Representative::First => representative::first_representatives(&clusters),
        Representative::Medoid => representative::medoid_representatives(&clusters, &distances),
    };
    Clustering {
        labels,
        clusters,
        representatives,
        near_constant,
    }
}

/// The `correlation` selector.
pub struct CorrelationSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<CorrelationSelector, String> {
    Params::from_json(params_json).map(|params| CorrelationSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

impl SelectorPlugin for CorrelationSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        check_input(&input.train).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))?;
        let clustering = cluster_columns(&input.train, &self.params, input.seed);
        // Representatives in column order; each one's score is the size of
        // the cluster it stands for (the host plots their histogram).
        let mut kept: Vec<(u32, f32)> = clustering
            .representatives
            .iter()
            .zip(&clustering.clusters)
            .map(|(&rep, members)| (rep, members.len() as f32))
            .collect();
        kept.sort_unstable_by_key(|&(rep, _)| rep);
        let (order, sizes): (Vec<u32>, Vec<f32>) = kept.into_iter().unzip();
        Ok(Selection {
            kind: SelectionKind::Filter,
            order: order.into(),
            cutoffs: Default::default(),
            scores: sizes.into(),
            notes: describe(&clustering, &self.params).into(),
        })
    }
}

/// Refuses inputs the clustering cannot give a meaning to.
fn check_input(x: &MatrixView<'_>) -> Result<(), String> {
    if x.cols() == 0 {
        return Err("the training matrix has no columns".into());
    }
    if x.rows() < 2 {
        return Err(format!(
            "correlations need at least 2 training rows, got {}",
            x.rows()
        ));
    }
    match x.as_slice().iter().position(|v| !v.is_finite()) {
        Some(at) => Err(format!(
            "training activation at row {}, column {} is {} (not finite)",
            at / x.cols(),
            at % x.cols(),
            x.as_slice()[at]
        )),
        None => Ok(()),
    }
}

/// The line the host logs, e.g. "2688 neurons -> 539 clusters at t=0.3
/// (average linkage, random representatives)".
fn describe(c: &Clustering, p: &Params) -> String {
    let mut notes = format!(
        "{} neurons -> {} clusters at t={} ({} linkage, {} representatives)",
        c.labels.len(),
        c.clusters.len(),
        p.threshold,
        p.linkage,
        p.representative
    );
    if !c.near_constant.is_empty() {
        notes.push_str(&format!(
            "; {} near-constant neuron(s) treated as uncorrelated",
            c.near_constant.len()
        ));
    }
    notes
}

sieve_core::export_selector_plugin!(
    name: "correlation",
    description: "Correlation clustering (Dalvi et al. 2020): Pearson |r| distance, \
                  average linkage, one representative per cluster",
    open: open,
    validate: validate,
);
