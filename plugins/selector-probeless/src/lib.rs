//! Sieve selector plugin `probeless`: ranks neurons without a probe.
//!
//! Antverg & Belinkov (2022), "On the pitfalls of analyzing individual
//! neurons in language models" (METHOD.md, "Alternative rankers"): for each
//! neuron `j` and class `c`, `mu_c[j]` is the mean activation of `j` over
//! the training rows labelled `c`; the neuron's score is the sum over
//! unordered class pairs of `|mu_a[j] - mu_b[j]|`. Neurons whose class means
//! differ most come first.
//!
//! Details:
//! - Only classes with at least one training row take part (a class absent
//!   from the training rows has no mean); with fewer than two such classes
//!   every score is 0.
//! - Means and sums are f64; ties in score are broken by the lower column
//!   index, so the ranking is a function of the data alone (the seed is not
//!   used).
//! - Classification only: a regression task is an error.
//!
//! Parameters: none (`{}`); unknown fields are an error.

use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin, TaskKind,
};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "probeless";

/// The `probeless` selector.
#[derive(Debug)]
pub struct ProbelessSelector;

/// The plugin constructor: parameters as JSON; only an empty object (or
/// nothing) is accepted.
pub fn open(params_json: &str) -> Result<ProbelessSelector, String> {
    validate(params_json).map(|()| ProbelessSelector)
}

/// Checks the parameters (there are none) before any extraction.
pub fn validate(params_json: &str) -> Result<(), String> {
    let params: serde_json::Map<String, serde_json::Value> = sieve_core::parse_params(params_json)
        .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))?;
    match params.keys().next() {
        None => Ok(()),
        Some(name) => Err(format!(
            "selector '{PLUGIN_NAME}': {}",
            sieve_core::param_error(name, "unknown; this selector takes no parameters")
        )),
    }
}

/// Per-class mean activation of every column: `means[c][j]`, `None` for a
/// class without training rows.
pub fn class_means(
    x: &MatrixView<'_>,
    labels: &[u32],
    num_classes: usize,
) -> Result<Vec<Option<Vec<f64>>>, String> {
    let (rows, cols) = (x.rows(), x.cols());
    if labels.len() != rows {
        return Err(format!("{} labels for {rows} training rows", labels.len()));
    }
    let mut sums = vec![vec![0.0f64; cols]; num_classes];
    let mut counts = vec![0usize; num_classes];
    for (i, &label) in labels.iter().enumerate() {
        let c = label as usize;
        if c >= num_classes {
            return Err(format!(
                "training row {i} has label {label}, but there are {num_classes} classes"
            ));
        }
        counts[c] += 1;
        for (j, (s, &v)) in sums[c].iter_mut().zip(x.row(i)).enumerate() {
            if !v.is_finite() {
                return Err(format!("training activation [{i}, {j}] is {v}"));
            }
            *s += f64::from(v);
        }
    }
    Ok(sums
        .into_iter()
        .zip(counts)
        .map(|(mut sum, n)| {
            (n > 0).then(|| {
                sum.iter_mut().for_each(|s| *s /= n as f64);
                sum
            })
        })
        .collect())
}

/// The probeless score of every column: `sum_{a<b} |mu_a - mu_b|` over the
/// classes present.
pub fn probeless_scores(means: &[Option<Vec<f64>>], cols: usize) -> Vec<f64> {
    let present: Vec<&Vec<f64>> = means.iter().flatten().collect();
    let mut scores = vec![0.0f64; cols];
    for (a, mu_a) in present.iter().enumerate() {
        for mu_b in &present[a + 1..] {
            for ((s, x), y) in scores.iter_mut().zip(mu_a.iter()).zip(mu_b.iter()) {
                *s += (x - y).abs();
            }
        }
    }
    scores
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

impl SelectorPlugin for ProbelessSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        rank(input).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }
}

fn rank(input: &SelectorInput<'_>) -> Result<Selection, String> {
    if input.task != TaskKind::Classification {
        return Err(
            "needs a classification task (it compares per-class mean activations); \
             this task is regression"
                .into(),
        );
    }
    let cols = input.train.cols();
    if cols == 0 {
        return Err("the training matrix has no columns".into());
    }
    let means = class_means(
        &input.train,
        input.train_labels.as_slice(),
        input.num_classes as usize,
    )?;
    let present = means.iter().flatten().count();
    let scores = probeless_scores(&means, cols);
    let order = rank_descending(&scores);
    let ranked_scores = order.iter().map(|&j| scores[j as usize] as f32).collect();
    Ok(Selection {
        kind: SelectionKind::Ranking,
        notes: format!(
            "{cols} neurons ranked by the summed pairwise distance of {present} class means"
        )
        .into(),
        order: order.into(),
        cutoffs: Vec::new().into(),
        scores: ranked_scores,
    })
}

sieve_core::export_selector_plugin!(
    name: "probeless",
    description: "Probeless neuron ranking: summed pairwise distance of per-class mean \
                  activations (Antverg & Belinkov 2022)",
    open: open,
    validate: validate,
);
