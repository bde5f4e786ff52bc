//! Sieve selector plugin `ap`: ranks neurons by average precision.
//!
//! NeuroX's "IoU" ranker (after Mu & Andreas 2020; METHOD.md, "Alternative
//! rankers"): activations with `|a| < zero_below` are set to 0, then each
//! neuron's activation is used as a detector score for a binary label and
//! rated by its **average precision** (AP), as scikit-learn's
//! `average_precision_score` defines it:
//!
//! ```text
//! AP = sum over distinct thresholds t (descending) of (R_t - R_prev) * P_t
//! ```
//!
//! where `P_t` and `R_t` are the precision and recall of "activation >= t".
//! Rows with equal activations share one threshold (they enter the ranking
//! together), so ties are handled exactly as scikit-learn handles them, and
//! the zeroed rows form one block at threshold 0.
//!
//! NeuroX scores a binary task with the positive class only. Sieve's tasks
//! have any number of classes, so each class `c` is scored one-vs-rest
//! (label `== c`), and the neuron's score reduces the per-class APs:
//! - `reduce: max` (default): a neuron is useful when it detects at least
//!   one class well; this mirrors the `selectivity` ranker's default.
//! - `reduce: mean`: the mean over the classes scored.
//!
//! A neuron whose activation *drops* for a class is as informative as one
//! that rises, but its AP on the raw activation is low. With `both_signs`
//! (default `true`) the per-class AP is `max(AP(a), AP(-a))`; with `false`
//! only `AP(a)` counts, as in NeuroX. Note that an uninformative neuron's AP
//! is about the class's share of the rows, so under `max` frequent classes
//! set a floor that every neuron reaches.
//!
//! Classes with no training row, or with every training row, have no
//! defined one-vs-rest AP and are skipped; with no class left every score
//! is 0. Neurons with the highest score come first; ties go to the lower
//! column index. Every row is used and nothing is random, so the ranking is
//! a function of the data alone (the seed is not used). Columns are scored
//! in parallel (rayon), each on its own, so the thread count does not
//! change the result. Classification only: a regression task is an error.
//!
//! Parameters (JSON object; `{}` gives the defaults; unknown fields are an
//! error):
//! - `zero_below` (number >= 0, default `0.05`): activations with a smaller
//!   magnitude are set to 0 first (`0` keeps every activation).
//! - `reduce`: `max` (default) or `mean` over the classes.
//! - `both_signs` (bool, default `true`): also score the negated activation.

use rayon::prelude::*;
use serde::Deserialize;
use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin, TaskKind,
};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "ap";

/// How per-class APs become one score per neuron.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduce {
    #[default]
    Max,
    Mean,
}

impl Reduce {
    fn name(self) -> &'static str {
        match self {
            Reduce::Max => "max",
            Reduce::Mean => "mean",
        }
    }
}

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub zero_below: f32,
    pub reduce: Reduce,
    pub both_signs: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            zero_below: 0.05,
            reduce: Reduce::Max,
            both_signs: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    zero_below: Option<f64>,
    reduce: Option<String>,
    both_signs: Option<bool>,
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
        let zero_below = match raw.zero_below {
            None => defaults.zero_below,
            Some(z) if z.is_finite() && z >= 0.0 && z <= f64::from(f32::MAX) => z as f32,
            Some(z) => return Err(format!("zero_below must be a number >= 0, got {z}")),
        };
        let reduce = match raw.reduce.as_deref() {
            None | Some("max") => Reduce::Max,
            Some("mean") => Reduce::Mean,
            Some(other) => return Err(format!("reduce must be `max` or `mean`, got `{other}`")),
        };
        Ok(Params {
            zero_below,
            reduce,
            both_signs: raw.both_signs.unwrap_or(defaults.both_signs),
        })
    }
}

/// The `ap` selector.
#[derive(Debug)]
pub struct ApSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<ApSelector, String> {
    Params::from_json(params_json).map(|params| ApSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

/// Rows per class; checks labels against the row count and class count.
pub fn class_counts(labels: &[u32], rows: usize, num_classes: usize) -> Result<Vec<usize>, String> {
    if labels.len() != rows {
        return Err(format!("{} labels for {rows} training rows", labels.len()));
    }
    let mut counts = vec![0usize; num_classes];
    for (i, &label) in labels.iter().enumerate() {
        match counts.get_mut(label as usize) {
            Some(n) => *n += 1,
            None => {
                return Err(format!(
                    "training row {i} has label {label}, but there are {num_classes} classes"
                ))
            }
        }
    }
    Ok(counts)
}

/// Average precision of `scores` for every one-vs-rest label `label == c`,
/// scikit-learn's definition (ties share a threshold). `positives[c]` is
/// the number of rows labelled `c`; classes with none get 0.
///
/// Returns `(ap_up, ap_down)`: the APs of the scores and of the negated
/// scores (`ap_down` is empty unless `both_signs`).
pub fn average_precisions(
    scores: &[f32],
    labels: &[u32],
    positives: &[usize],
    both_signs: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut pairs: Vec<(f32, u32)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    // Descending by score; the label order inside a tie does not matter.
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut starts: Vec<usize> = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        if i == 0 || pair.0 != pairs[i - 1].0 {
            starts.push(i);
        }
    }
    let groups = starts
        .iter()
        .enumerate()
        .map(|(g, &s)| s..starts.get(g + 1).copied().unwrap_or(pairs.len()));
    let mut sweep = Sweep::new(positives);
    let up = sweep.run(&pairs, groups.clone());
    let down = if both_signs {
        sweep.run(&pairs, groups.rev())
    } else {
        Vec::new()
    };
    (up, down)
}

/// Scratch space for one pass over the thresholds.
struct Sweep<'a> {
    positives: &'a [usize],
    in_group: Vec<usize>,
    touched: Vec<usize>,
}

impl<'a> Sweep<'a> {
    fn new(positives: &'a [usize]) -> Self {
        Sweep {
            positives,
            in_group: vec![0; positives.len()],
            touched: Vec::new(),
        }
    }

    /// Walks the tie groups in the given order (highest threshold first);
    /// each group adds `(its positives / P_c) * precision after it`.
    fn run(
        &mut self,
        pairs: &[(f32, u32)],
        groups: impl Iterator<Item = std::ops::Range<usize>>,
    ) -> Vec<f64> {
        let classes = self.positives.len();
        let mut true_pos = vec![0usize; classes];
        let mut ap = vec![0.0f64; classes];
        let mut ranked = 0usize;
        for group in groups {
            ranked += group.len();
            for &(_, label) in &pairs[group] {
                let c = label as usize;
                if self.in_group[c] == 0 {
                    self.touched.push(c);
                }
                self.in_group[c] += 1;
            }
            for c in self.touched.drain(..) {
                let hits = std::mem::take(&mut self.in_group[c]);
                true_pos[c] += hits;
                ap[c] +=
                    hits as f64 / self.positives[c] as f64 * true_pos[c] as f64 / ranked as f64;
            }
        }
        ap
    }
}

/// The score of every column of `x` (see the crate docs) and the number of
/// classes scored.
pub fn ap_scores(
    x: &MatrixView<'_>,
    labels: &[u32],
    num_classes: usize,
    params: &Params,
) -> Result<(Vec<f64>, usize), String> {
    let (rows, cols) = (x.rows(), x.cols());
    let counts = class_counts(labels, rows, num_classes)?;
    for i in 0..rows {
        if let Some(j) = x.row(i).iter().position(|v| !v.is_finite()) {
            return Err(format!("training activation [{i}, {j}] is {}", x.row(i)[j]));
        }
    }
    let scored: Vec<usize> = (0..num_classes)
        .filter(|&c| counts[c] > 0 && counts[c] < rows)
        .collect();
    if scored.is_empty() {
        return Ok((vec![0.0; cols], 0));
    }
    let zero_below = params.zero_below;
    let scores = (0..cols)
        .into_par_iter()
        .map(|j| {
            let column: Vec<f32> = (0..rows)
                .map(|i| {
                    let v = x.row(i)[j];
                    if v.abs() < zero_below {
                        0.0
                    } else {
                        v
                    }
                })
                .collect();
            let (up, down) = average_precisions(&column, labels, &counts, params.both_signs);
            let per_class = scored.iter().map(|&c| match down.get(c) {
                Some(&d) => up[c].max(d),
                None => up[c],
            });
            match params.reduce {
                Reduce::Max => per_class.fold(0.0f64, f64::max),
                Reduce::Mean => per_class.sum::<f64>() / scored.len() as f64,
            }
        })
        .collect();
    Ok((scores, scored.len()))
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

impl SelectorPlugin for ApSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        self.rank(input)
            .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }
}

impl ApSelector {
    fn rank(&self, input: &SelectorInput<'_>) -> Result<Selection, String> {
        if input.task != TaskKind::Classification {
            return Err(
                "needs a classification task (it scores each neuron as a detector of a \
                 class); this task is regression"
                    .into(),
            );
        }
        let cols = input.train.cols();
        if cols == 0 {
            return Err("the training matrix has no columns".into());
        }
        let (scores, classes) = ap_scores(
            &input.train,
            input.train_labels.as_slice(),
            input.num_classes as usize,
            &self.params,
        )?;
        let order = rank_descending(&scores);
        let ranked_scores = order.iter().map(|&j| scores[j as usize] as f32).collect();
        let p = &self.params;
        let signs = if p.both_signs { ", both signs" } else { "" };
        Ok(Selection {
            kind: SelectionKind::Ranking,
            notes: format!(
                "{cols} neurons ranked by one-vs-rest average precision ({} over {classes} \
                 classes{signs}, |a| < {} zeroed)",
                p.reduce.name(),
                p.zero_below
            )
            .into(),
            order: order.into(),
            cutoffs: Vec::new().into(),
            scores: ranked_scores,
        })
    }
}

sieve_core::export_selector_plugin!(
    name: "ap",
    description: "Average-precision neuron ranking (NeuroX \"IoU\"): one-vs-rest AP of \
                  thresholded activations, max over classes",
    open: open,
    validate: validate,
);
