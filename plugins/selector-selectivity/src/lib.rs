//! Sieve selector plugin `selectivity`: ranks neurons by class selectivity.
//!
//! Na et al. (2019), "Discovery of natural language concepts in individual
//! units of CNNs" (METHOD.md, "Alternative rankers"): for a neuron `j` and a
//! class `c`, the selectivity is
//!
//! ```text
//! s_c[j] = |mu_c[j] - mu_rest[j]| / (max[j] - min[j])
//! ```
//!
//! where `mu_c` is the mean activation over the training rows labelled `c`,
//! `mu_rest` the mean over all other training rows, and `max - min` the
//! neuron's range over the training rows (`s = 0` for a constant neuron).
//! The neuron's score aggregates its per-class selectivities; by default it
//! is the **maximum over classes** (a neuron is useful when it singles out
//! at least one class), with `aggregate: mean` as the alternative. Neurons
//! with the highest score come first; ties go to the lower column index, so
//! the ranking is a function of the data alone (the seed is not used).
//!
//! Classes with no training row, or with every training row (no "rest"),
//! are skipped. Classification only: a regression task is an error.
//!
//! Parameters (JSON object; `{}` gives the defaults):
//! - `aggregate`: `max` (default) or `mean` over the classes present.

use serde::Deserialize;
use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin, TaskKind,
};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "selectivity";

/// How per-class selectivities become one score per neuron.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Aggregate {
    #[default]
    Max,
    Mean,
}

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params {
    pub aggregate: Aggregate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    aggregate: Option<String>,
}

impl Params {
    /// Parses the JSON object the host passes; errors name the plugin.
    pub fn from_json(json: &str) -> Result<Params, String> {
        Self::parse(json).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }

    fn parse(json: &str) -> Result<Params, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawParams = sieve_core::parse_params(json)?;
        let aggregate = match raw.aggregate.as_deref() {
            None | Some("max") => Aggregate::Max,
            Some("mean") => Aggregate::Mean,
            Some(other) => return Err(format!("aggregate must be `max` or `mean`, got `{other}`")),
        };
        Ok(Params { aggregate })
    }
}

/// The `selectivity` selector.
#[derive(Debug)]
pub struct SelectivitySelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<SelectivitySelector, String> {
    Params::from_json(params_json).map(|params| SelectivitySelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

/// The selectivity score of every column of `x` (see the crate docs).
pub fn selectivity_scores(
    x: &MatrixView<'_>,
    labels: &[u32],
    num_classes: usize,
    aggregate: Aggregate,
) -> Result<Vec<f64>, String> {
    let (rows, cols) = (x.rows(), x.cols());
    if labels.len() != rows {
        return Err(format!("{} labels for {rows} training rows", labels.len()));
    }
    let mut sums = vec![vec![0.0f64; cols]; num_classes];
    let mut counts = vec![0usize; num_classes];
    let mut total = vec![0.0f64; cols];
    let mut min = vec![f64::INFINITY; cols];
    let mut max = vec![f64::NEG_INFINITY; cols];
    for (i, &label) in labels.iter().enumerate() {
        let c = label as usize;
        if c >= num_classes {
            return Err(format!(
                "training row {i} has label {label}, but there are {num_classes} classes"
            ));
        }
        counts[c] += 1;
        for (j, &v) in x.row(i).iter().enumerate() {
            if !v.is_finite() {
                return Err(format!("training activation [{i}, {j}] is {v}"));
            }
            let v = f64::from(v);
            sums[c][j] += v;
            total[j] += v;
            min[j] = min[j].min(v);
            max[j] = max[j].max(v);
        }
    }
    let mut scores = vec![0.0f64; cols];
    let mut classes = 0usize;
    for (sum, &n) in sums.iter().zip(&counts) {
        if n == 0 || n == rows {
            continue;
        }
        classes += 1;
        let rest = (rows - n) as f64;
        for j in 0..cols {
            let range = max[j] - min[j];
            let s = if range > 0.0 {
                (sum[j] / n as f64 - (total[j] - sum[j]) / rest).abs() / range
            } else {
                0.0
            };
            scores[j] = match aggregate {
                Aggregate::Max => scores[j].max(s),
                Aggregate::Mean => scores[j] + s,
            };
        }
    }
    if aggregate == Aggregate::Mean && classes > 0 {
        scores.iter_mut().for_each(|s| *s /= classes as f64);
    }
    Ok(scores)
}

/// Column indices by score descending, ties by the lower index.
pub fn rank_descending(scores: &[f64]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    order
}

impl SelectorPlugin for SelectivitySelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        self.rank(input)
            .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }
}

impl SelectivitySelector {
    fn rank(&self, input: &SelectorInput<'_>) -> Result<Selection, String> {
        if input.task != TaskKind::Classification {
            return Err(
                "needs a classification task (it compares each class with the rest); \
                 this task is regression"
                    .into(),
            );
        }
        let cols = input.train.cols();
        if cols == 0 {
            return Err("the training matrix has no columns".into());
        }
        let scores = selectivity_scores(
            &input.train,
            input.train_labels.as_slice(),
            input.num_classes as usize,
            self.params.aggregate,
        )?;
        let order = rank_descending(&scores);
        let ranked_scores = order.iter().map(|&j| scores[j as usize] as f32).collect();
        let aggregate = match self.params.aggregate {
            Aggregate::Max => "max",
            Aggregate::Mean => "mean",
        };
        Ok(Selection {
            kind: SelectionKind::Ranking,
            notes: format!(
                "{cols} neurons ranked by class-vs-rest selectivity ({aggregate} over classes)"
            )
            .into(),
            order: order.into(),
            cutoffs: Vec::new().into(),
            scores: ranked_scores,
        })
    }
}

sieve_core::export_selector_plugin!(
    name: "selectivity",
    description: "Selectivity neuron ranking: |class mean - rest mean| / activation range, \
                  max over classes (Na et al. 2019)",
    open: open,
    validate: validate,
);
