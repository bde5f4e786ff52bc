//! Sieve selector plugin `gaussian`: greedy forward selection of neurons
//! under a per-class Gaussian model.
//!
//! After Torroba Hennigen, Williams & Cotterell (2020), "Intrinsic probing
//! through dimension selection" (METHOD.md, "Alternative rankers"): each
//! class `c` gets a multivariate Gaussian over the selected neurons, and
//! neurons are added one at a time, each time the one that most increases
//! the estimated mutual information
//!
//! ```text
//! I(label; x_S) = H(label) - H(label | x_S)
//! H(label | x_S) ~ -(1/n) sum_i ln p(y_i | x_i[S])
//! ```
//!
//! where `p(c | x) ∝ prior_c N(x; mean_c, Sigma_c)` is the Gaussian
//! classifier's posterior and `prior_c = n_c / n`. Maximising the mean log
//! posterior of the true label is the same thing, since `H(label)` does not
//! depend on `S`. After `budget` greedy picks, the remaining neurons follow
//! in the order of their single-neuron mutual information (the first greedy
//! step's estimate for every column), so the ranking lists every column
//! once.
//!
//! By default (`score_on: train`) the sum runs over the training rows the
//! Gaussians are fitted on, as in the paper. That estimate is optimistic,
//! and more so as the model grows: with many classes, few rows per class
//! and tens of neurons, per-class covariances fit their own rows closely,
//! the in-sample estimate approaches `H(label)`, and later picks are
//! driven by that fit rather than by the data's information. With
//! `score_on: dev` the Gaussians are still fitted on the training rows but
//! the sum runs over the dev rows (a held-out estimate, which does not
//! saturate); dev rows of a class with no training row cannot be scored
//! and are left out (the notes count them), and `H(label)` is then the
//! cross-entropy of the training class priors on the dev rows, so that the
//! empty set scores 0.
//!
//! # The model, exactly
//!
//! Columns are first standardised (mean 0, variance 1 over the training
//! rows used; a constant column becomes 0; dev rows get the same shift and
//! scale). With `S_c` the scatter matrix of class `c`
//! (`sum over its rows of (x - mean_c)(x - mean_c)^T`), `n` rows and `n_c`
//! of them in class `c`:
//!
//! ```text
//! T       = (sum_c S_c) / n                       pooled within-class covariance
//! Sigma_c = (S_c + prior * T) / (n_c + prior) + 1e-4 * I
//! ```
//!
//! This is the posterior-mean covariance of a Normal-inverse-Wishart-style
//! prior worth `prior` pseudo-rows whose scatter is the pooled within-class
//! covariance (an empirical-Bayes choice: a class with few rows borrows the
//! shape of the others). The class means are the sample means. The prior
//! shrinks towards `T` rather than towards the identity because with
//! `(S_c + lambda I) / (n_c + nu)` a constant neuron would get a different
//! variance in every class (through `n_c`) and look informative; here it
//! has the same variance (the `1e-4` ridge) in every class and adds exactly
//! nothing. The ridge, in standardised units, keeps near-duplicate neurons
//! finite.
//!
//! # Cost
//!
//! Nothing is refitted: each class keeps the Cholesky factor of its
//! covariance over the selected neurons in whitened form and extends it by
//! one row per pick (model.rs). Scoring every candidate at step `k` costs
//! one `rows x k x cols` matrix product per class (the `gemm` crate) and a
//! log-sum-exp over classes for every scored row and candidate
//! (kernel.rs), so a run costs about `rows * cols * classes * budget^2 / 2`
//! multiply-adds plus `rows * cols * classes * budget` exponentials: on
//! 5,000 rows x 2,688 columns, 45 classes and a budget of 50 it takes
//! about two CPU-minutes (about one minute on two free cores). Memory is
//! about `classes * budget * (cols + rows) * 4` bytes. The method is for
//! small budgets; budgets over 400 are refused.
//!
//! # Determinism
//!
//! The only random choices are the row subsamples (`max_rows`, training
//! and dev), drawn from the run's seed. Candidates are scored in fixed column blocks, each summed in
//! a fixed row order, so the same seed and data give the same ranking for
//! any thread count (on the same CPU kind: the matrix products and the
//! element-wise code pick their SIMD width at run time). Ties go to the
//! lower column index. No scores are returned (greedy gains and
//! single-neuron information are not one scale); the notes give the
//! estimated information of the greedy set.
//!
//! Classification only: a regression task is an error.
//!
//! Parameters (JSON object; `{}` gives the defaults; unknown fields are an
//! error):
//! - `budget` (integer 1..=400, default 50): neurons chosen greedily (at
//!   most the number of columns).
//! - `max_rows` (integer >= 2, default 5000): a seeded random subsample of
//!   at most this many training rows is used (and as many dev rows).
//! - `prior` (number >= 0, default 100): the prior's weight in pseudo-rows
//!   (larger: closer to one covariance shared by all classes, which
//!   overfits less; on 5,000 rows of 45 classes with weak signals, 100 and
//!   300 found clearly more of the planted neurons than 10).
//! - `score_on`: `train` (default) or `dev`: the rows the greedy criterion
//!   is estimated on.

mod kernel;
mod model;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin, TaskKind,
};

use kernel::{candidate_objectives, Step};
use model::{Model, Rows};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "gaussian";

/// The largest budget accepted.
pub const MAX_BUDGET: usize = 400;

/// Which rows the greedy criterion is estimated on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScoreOn {
    /// The training rows the Gaussians are fitted on (in-sample).
    #[default]
    Train,
    /// The dev rows (held out).
    Dev,
}

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub budget: usize,
    pub max_rows: usize,
    pub prior: f64,
    pub score_on: ScoreOn,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            budget: 50,
            max_rows: 5000,
            prior: 100.0,
            score_on: ScoreOn::Train,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    budget: Option<u64>,
    max_rows: Option<u64>,
    prior: Option<f64>,
    score_on: Option<String>,
}

impl Params {
    /// Parses the JSON object the host passes; errors name the plugin.
    pub fn from_json(json: &str) -> Result<Params, String> {
        Self::parse(json).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }

    fn parse(json: &str) -> Result<Params, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawParams = sieve_core::parse_params(json)?;
        let d = Params::default();
        let budget = match raw.budget {
            None => d.budget,
            Some(b) if (1..=MAX_BUDGET as u64).contains(&b) => b as usize,
            Some(0) => return Err("budget must be at least 1, got 0".into()),
            Some(b) => {
                return Err(format!(
                    "budget must be at most {MAX_BUDGET}, got {b}: greedy Gaussian selection \
                     is meant for small budgets (its cost grows with the budget squared); \
                     rank with another selector for more neurons"
                ))
            }
        };
        let max_rows = match raw.max_rows {
            None => d.max_rows,
            Some(m) if m >= 2 && m <= u32::MAX as u64 => m as usize,
            Some(m) => return Err(format!("max_rows must be at least 2, got {m}")),
        };
        let prior = match raw.prior {
            None => d.prior,
            Some(p) if p.is_finite() && p >= 0.0 => p,
            Some(p) => return Err(format!("prior must be a number >= 0, got {p}")),
        };
        let score_on = match raw.score_on.as_deref() {
            None | Some("train") => ScoreOn::Train,
            Some("dev") => ScoreOn::Dev,
            Some(other) => return Err(format!("score_on must be `train` or `dev`, got `{other}`")),
        };
        Ok(Params {
            budget,
            max_rows,
            prior,
            score_on,
        })
    }
}

/// The `gaussian` selector.
#[derive(Debug)]
pub struct GaussianSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<GaussianSelector, String> {
    Params::from_json(params_json).map(|params| GaussianSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

/// The seeded generator (SplitMix64) comes from core, shared by every plugin.
pub use sieve_core::SplitMix64;

/// `k` of `0..n` drawn without replacement from `seed` (all of them when
/// `k >= n`), in ascending order.
pub fn subsample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    SplitMix64::new(seed ^ 0x6A09_E667_F3BC_C908).sample_sorted(n, k)
}

/// The outcome of a run: the ranking and what the log should say.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianRanking {
    /// Every column once: the greedy picks, then the rest.
    pub order: Vec<u32>,
    /// How many of `order` were picked greedily.
    pub greedy: usize,
    /// Estimated `I(label; greedy picks)` in nats.
    pub information: f64,
    /// Estimated `H(label)` in nats: the cross-entropy of the class priors
    /// on the scored rows (their entropy when the scored rows are the
    /// training rows).
    pub entropy: f64,
    /// Estimated single-neuron `I(label; column)` of every column, in nats.
    pub single: Vec<f64>,
    /// Rows the model was fitted on, rows it was scored on, and classes.
    pub fit_rows: usize,
    pub scored_rows: usize,
    /// Dev rows left out because their class has no training row.
    pub unscorable: usize,
    pub classes: usize,
}

/// Activations with one class label per row.
#[derive(Clone, Copy, Debug)]
pub struct Labelled<'a> {
    pub x: MatrixView<'a>,
    pub labels: &'a [u32],
}

impl Labelled<'_> {
    /// Labels in range and finite activations; `what` names the split.
    fn check(&self, what: &str, num_classes: usize) -> Result<(), String> {
        let rows = self.x.rows();
        if self.labels.len() != rows {
            return Err(format!(
                "{} labels for {rows} {what} rows",
                self.labels.len()
            ));
        }
        if let Some(i) = self.labels.iter().position(|&l| l as usize >= num_classes) {
            return Err(format!(
                "{what} row {i} has label {}, but there are {num_classes} classes",
                self.labels[i]
            ));
        }
        for i in 0..rows {
            if let Some(j) = self.x.row(i).iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "{what} activation [{i}, {j}] is {}",
                    self.x.row(i)[j]
                ));
            }
        }
        Ok(())
    }
}

/// Runs the greedy selection (see the crate docs): the Gaussians are
/// fitted on `train`, and scored on `dev` when given, else on `train`.
pub fn gaussian_ranking(
    train: Labelled<'_>,
    dev: Option<Labelled<'_>>,
    num_classes: usize,
    params: &Params,
    seed: u64,
) -> Result<GaussianRanking, String> {
    let cols = train.x.cols();
    train.check("training", num_classes)?;
    if let Some(dev) = &dev {
        if dev.x.cols() != cols {
            return Err(format!(
                "{} dev columns for {cols} training columns",
                dev.x.cols()
            ));
        }
        dev.check("dev", num_classes)?;
    }
    let kept = subsample(train.x.rows(), params.max_rows, seed);
    // Dense class indices over the classes present in the kept rows.
    let mut dense = vec![u32::MAX; num_classes];
    let mut counts: Vec<usize> = Vec::new();
    let fit_labels: Vec<u32> = kept
        .iter()
        .map(|&i| {
            let c = train.labels[i] as usize;
            if dense[c] == u32::MAX {
                dense[c] = counts.len() as u32;
                counts.push(0);
            }
            counts[dense[c] as usize] += 1;
            dense[c]
        })
        .collect();
    let classes = counts.len();
    let scale = Standardiser::fit(&train.x, &kept);
    let fit_x = scale.apply(&train.x, &kept);
    let (scored_x, scored_labels, unscorable) = match &dev {
        None => (None, None, 0),
        Some(dev) => {
            let drawn = subsample(dev.x.rows(), params.max_rows, seed ^ 0xDE5E_1EC7);
            let (known, unknown): (Vec<usize>, Vec<usize>) = drawn
                .into_iter()
                .partition(|&i| dense[dev.labels[i] as usize] != u32::MAX);
            if known.is_empty() {
                return Err("no dev row has a class seen in the training rows".into());
            }
            let labels: Vec<u32> = known
                .iter()
                .map(|&i| dense[dev.labels[i] as usize])
                .collect();
            (
                Some(scale.apply(&dev.x, &known)),
                Some(labels),
                unknown.len(),
            )
        }
    };
    let fit = Rows {
        x: &fit_x,
        labels: &fit_labels,
    };
    let scored = match (&scored_x, &scored_labels) {
        (Some(x), Some(labels)) => Rows { x, labels },
        _ => fit,
    };
    let n = scored.len() as f64;
    let log_priors: Vec<f64> = counts
        .iter()
        .map(|&k| (k as f64 / kept.len() as f64).ln())
        .collect();
    let entropy = -scored
        .labels
        .iter()
        .map(|&c| log_priors[c as usize])
        .sum::<f64>()
        / n;
    let mut ranking = GaussianRanking {
        order: (0..cols as u32).collect(),
        greedy: 0,
        information: 0.0,
        entropy,
        single: vec![0.0; cols],
        fit_rows: kept.len(),
        scored_rows: scored.len(),
        unscorable,
        classes,
    };
    if classes < 2 || cols == 0 {
        return Ok(ranking);
    }
    let budget = params.budget.min(cols);
    let mut model = Model::new(fit, scored, cols, classes, budget, params.prior);
    let mut chosen = vec![false; cols];
    for step in 0..budget {
        let objectives = candidate_objectives(&Step {
            x: scored.x,
            rows: scored.len(),
            cols,
            labels: scored.labels,
            classes: &model.classes,
            k: step,
            budget,
        });
        if step == 0 {
            ranking.single = objectives.iter().map(|o| entropy + o / n).collect();
        }
        let best = (0..cols)
            .filter(|&j| !chosen[j])
            .fold(None, |best: Option<usize>, j| match best {
                Some(b) if objectives[b].total_cmp(&objectives[j]).is_ge() => Some(b),
                _ => Some(j),
            })
            .expect("fewer picks than columns");
        chosen[best] = true;
        model.add(best);
    }
    let single = &ranking.single;
    let mut rest: Vec<u32> = (0..cols as u32).filter(|&j| !chosen[j as usize]).collect();
    rest.sort_by(|&a, &b| {
        single[b as usize]
            .total_cmp(&single[a as usize])
            .then(a.cmp(&b))
    });
    let mut order: Vec<u32> = model.selected.iter().map(|&j| j as u32).collect();
    order.extend(rest);
    ranking.order = order;
    ranking.greedy = budget;
    ranking.information = entropy + model.objective() / n;
    Ok(ranking)
}

/// Per-column shift and scale to mean 0 and variance 1 over the kept
/// training rows (scale 0 for a constant column).
pub(crate) struct Standardiser {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Standardiser {
    pub(crate) fn fit(x: &MatrixView<'_>, kept: &[usize]) -> Self {
        let cols = x.cols();
        let n = kept.len().max(1) as f64;
        let mut mean = vec![0.0f64; cols];
        for &i in kept {
            for (m, &v) in mean.iter_mut().zip(x.row(i)) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; cols];
        for &i in kept {
            for ((s, &v), &m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
                let d = f64::from(v) - m;
                *s += d * d;
            }
        }
        let scale = var
            .iter()
            .map(|&s| {
                let sd = (s / n).sqrt();
                if sd > 0.0 {
                    1.0 / sd
                } else {
                    0.0
                }
            })
            .collect();
        Standardiser { mean, scale }
    }

    /// Rows `rows` of `x`, standardised, row-major.
    pub(crate) fn apply(&self, x: &MatrixView<'_>, rows: &[usize]) -> Vec<f32> {
        let mut z = Vec::with_capacity(rows.len() * x.cols());
        for &i in rows {
            z.extend(
                x.row(i)
                    .iter()
                    .zip(&self.mean)
                    .zip(&self.scale)
                    .map(|((&v, &m), &s)| ((f64::from(v) - m) * s) as f32),
            );
        }
        z
    }
}

impl SelectorPlugin for GaussianSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        self.rank(input)
            .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }
}

impl GaussianSelector {
    fn rank(&self, input: &SelectorInput<'_>) -> Result<Selection, String> {
        if input.task != TaskKind::Classification {
            return Err(
                "needs a classification task (it fits one Gaussian per class); this task is \
                 regression"
                    .into(),
            );
        }
        let cols = input.train.cols();
        if cols == 0 {
            return Err("the training matrix has no columns".into());
        }
        let train = Labelled {
            x: input.train,
            labels: input.train_labels.as_slice(),
        };
        let dev = match self.params.score_on {
            ScoreOn::Train => None,
            ScoreOn::Dev => Some(Labelled {
                x: input.dev,
                labels: input.dev_labels.as_slice(),
            }),
        };
        let r = gaussian_ranking(
            train,
            dev,
            input.num_classes as usize,
            &self.params,
            input.seed,
        )?;
        let notes = if r.greedy == 0 {
            format!(
                "{cols} neurons in column order: fewer than 2 classes in the {} training rows \
                 used, nothing to select",
                r.fit_rows
            )
        } else {
            let scored = match self.params.score_on {
                ScoreOn::Train => "in-sample".to_string(),
                ScoreOn::Dev if r.unscorable > 0 => format!(
                    "on {} dev rows, {} more left out for classes with no training row",
                    r.scored_rows, r.unscorable
                ),
                ScoreOn::Dev => format!("on {} dev rows", r.scored_rows),
            };
            format!(
                "{cols} neurons: {} chosen greedily by per-class Gaussians fitted on {} rows \
                 ({} classes; estimated I(label; them) = {:.3} of H(label) = {:.3} nats, \
                 {scored}), the rest by single-neuron information",
                r.greedy, r.fit_rows, r.classes, r.information, r.entropy
            )
        };
        Ok(Selection {
            kind: SelectionKind::Ranking,
            notes: notes.into(),
            order: r.order.into(),
            cutoffs: Vec::new().into(),
            scores: Vec::new().into(),
        })
    }
}

sieve_core::export_selector_plugin!(
    name: "gaussian",
    description: "Gaussian neuron ranking: greedy forward selection maximising the mutual \
                  information of per-class Gaussians (Torroba Hennigen et al. 2020)",
    open: open,
    validate: validate,
);
