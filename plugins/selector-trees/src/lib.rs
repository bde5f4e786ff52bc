//! Sieve selector plugin `tree-importance`: ranks neurons by the mean
//! decrease in impurity (MDI) of a seeded ensemble of smartcore trees.
//!
//! A random-forest-style ensemble is grown on the training rows and every
//! neuron is scored by its MDI (Breiman 2001): each split adds to its
//! feature's score the node's impurity minus the impurities of its two
//! children, weighted by the node's share of the tree's rows (Gini for
//! classification, variance for regression). Neurons with the highest mean
//! MDI come first.
//!
//! # Why the ensemble is built here, from smartcore trees
//!
//! smartcore 0.7's `RandomForestClassifier` keeps its trees private and
//! offers neither feature importances nor the tree structure, so the
//! forest's own MDI cannot be read. Its single trees can:
//! `DecisionTreeClassifier::compute_feature_importances` and
//! `DecisionTreeRegressor::compute_feature_importances` return exactly the
//! per-tree MDI. This crate therefore grows the trees itself and averages
//! their MDI. The one thing the public tree API lacks is the forest's
//! per-split feature sampling (a single tree always searches every column it
//! is given), so the feature randomness is drawn **per tree** instead (the
//! random subspace method, Ho 1998): tree `t` sees one block of
//! `features_per_tree` columns. The blocks come from seeded shuffles of all
//! columns cut into near-equal parts, one shuffle per round of trees, so
//! every column sits in the same number of trees (give or take one) and a
//! column's score is its MDI summed over the trees that saw it, divided by
//! their number (a column that no tree saw, possible only when `trees` is
//! smaller than the number of blocks, scores 0). Each tree is fitted on a
//! random 63.2% of the rows drawn without replacement, the expected share of
//! distinct rows in a bootstrap sample, which gives bagging's diversity at
//! less cost than a bootstrap sample with duplicated rows (smartcore's
//! classification tree takes no sample weights).
//!
//! Cost: a smartcore tree scans all of its rows for every candidate column
//! at every node, so a tree costs about `rows * features_per_tree * depth`
//! (and more with many classes). The default block size makes every column
//! appear in about three trees (raise `trees` or `features_per_tree` for a
//! steadier ranking at proportionally more cost); on 5,000 rows x 2,688
//! columns with 45 classes the ranking takes 1-2 minutes on two cores.
//!
//! # Determinism
//!
//! Every random choice (the row subsample, the column shuffles, each tree's
//! rows and seed) derives from the run's seed; trees are fitted in parallel
//! (rayon) but combined in tree order, so the same seed and data give the
//! same ranking for any thread count. Ties go to the lower column index.
//! Scores are normalised to sum to 1.
//!
//! Classification uses the Gini criterion; regression uses smartcore's
//! regression tree (variance reduction) on the targets.
//!
//! Parameters (JSON object; `{}` gives the defaults; unknown fields are an
//! error):
//! - `max_rows` (integer >= 2, default 5000): a seeded random subsample of
//!   at most this many training rows is used.
//! - `trees` (integer 1..=1000, default 50): the number of trees.
//! - `max_depth` (integer 1..=64, default 12): the trees' maximum depth.
//! - `features_per_tree` (integer >= 1, default
//!   `max(ceil(sqrt(columns)), ceil(3 * columns / trees))`, at most the
//!   number of columns): the size of each tree's column block.

use rayon::prelude::*;
use serde::Deserialize;
use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin, TaskKind,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters,
};
use smartcore::tree::decision_tree_regressor::{
    DecisionTreeRegressor, DecisionTreeRegressorParameters,
};

/// The plugin's name in specs.
pub const PLUGIN_NAME: &str = "tree-importance";

/// Each tree's share of the (subsampled) rows: the expected share of
/// distinct rows in a bootstrap sample, 1 - 1/e.
const ROW_SHARE: f64 = 0.632;

/// How many trees a column appears in, on average, with the default block
/// size.
const DEFAULT_COVERAGE: usize = 3;

/// Validated parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub max_rows: usize,
    pub trees: usize,
    pub max_depth: u16,
    /// `None`: the default, which depends on the number of columns.
    pub features_per_tree: Option<usize>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_rows: 5000,
            trees: 50,
            max_depth: 12,
            features_per_tree: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    max_rows: Option<u64>,
    trees: Option<u64>,
    max_depth: Option<u64>,
    features_per_tree: Option<u64>,
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
        let max_rows = in_range(
            "max_rows",
            raw.max_rows,
            d.max_rows as u64,
            2,
            u32::MAX as u64,
        )?;
        let trees = in_range("trees", raw.trees, d.trees as u64, 1, 1000)?;
        let max_depth = in_range("max_depth", raw.max_depth, u64::from(d.max_depth), 1, 64)?;
        let features_per_tree = match raw.features_per_tree {
            None => None,
            Some(m) => {
                Some(in_range("features_per_tree", Some(m), 1, 1, u32::MAX as u64)? as usize)
            }
        };
        Ok(Params {
            max_rows: max_rows as usize,
            trees: trees as usize,
            max_depth: max_depth as u16,
            features_per_tree,
        })
    }

    /// The block size for `cols` columns.
    pub fn block_size(&self, cols: usize) -> usize {
        let m = self.features_per_tree.unwrap_or_else(|| {
            let sqrt = (cols as f64).sqrt().ceil() as usize;
            sqrt.max((DEFAULT_COVERAGE * cols).div_ceil(self.trees))
        });
        m.clamp(1, cols.max(1))
    }
}

fn in_range(name: &str, value: Option<u64>, default: u64, lo: u64, hi: u64) -> Result<u64, String> {
    match value {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(format!("{name} must be between {lo} and {hi}, got {v}")),
    }
}

/// The `tree-importance` selector.
#[derive(Debug)]
pub struct TreeImportanceSelector {
    pub params: Params,
}

/// The plugin constructor: parameters as JSON.
pub fn open(params_json: &str) -> Result<TreeImportanceSelector, String> {
    Params::from_json(params_json).map(|params| TreeImportanceSelector { params })
}

/// Checks the parameters without building the selector: the host calls it
/// before any extraction, so a typo costs seconds, not a run.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

/// The seeded generator (SplitMix64) comes from core, shared by every plugin.
pub use sieve_core::SplitMix64;

/// `k` of `0..n` drawn without replacement (all of them when `k >= n`), in
/// ascending order.
pub fn sample_without_replacement(n: usize, k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    rng.sample_sorted(n, k)
}

/// The column block of every tree: round `r` shuffles all columns and cuts
/// them into `ceil(cols / block)` near-equal blocks; tree `t` takes block
/// `t % blocks` of round `t / blocks`. A block lists its columns in
/// shuffled order.
pub fn column_blocks(cols: usize, block: usize, trees: usize, seed: u64) -> Vec<Vec<usize>> {
    let blocks = cols.div_ceil(block.max(1)).max(1);
    let mut plan = Vec::with_capacity(trees);
    for round in 0..trees.div_ceil(blocks) {
        let mut rng = SplitMix64::for_stream(seed, 0x0C01_0000 + round as u64);
        let mut order: Vec<usize> = (0..cols).collect();
        for i in (1..cols).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for b in 0..blocks {
            if plan.len() == trees {
                break;
            }
            // Left in shuffled order: a smartcore tree keeps the first of
            // equally good splits, so sorting would favour low column
            // indices wherever splits tie (small nodes have many).
            plan.push(order[b * cols / blocks..(b + 1) * cols / blocks].to_vec());
        }
    }
    plan
}

/// What the trees predict.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    Classes(&'a [u32]),
    Values(&'a [f32]),
}

/// The per-tree MDI of the columns of `x` named by `columns`, on rows
/// `rows`, aligned with `columns`. A tree whose rows hold one class (or one
/// target value) cannot split: all zeros.
fn tree_importance(
    x: &MatrixView<'_>,
    target: Target<'_>,
    rows: &[usize],
    columns: &[usize],
    max_depth: u16,
    seed: u64,
) -> Result<Vec<f64>, String> {
    // Column-major: a smartcore tree walks one column at a time.
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    for &j in columns {
        values.extend(rows.iter().map(|&i| x.row(i)[j]));
    }
    let matrix = DenseMatrix::new(rows.len(), columns.len(), values, true)
        .map_err(|e| format!("building a smartcore matrix: {e}"))?;
    match target {
        Target::Classes(labels) => {
            let y: Vec<u32> = rows.iter().map(|&i| labels[i]).collect();
            if y.iter().all(|&l| l == y[0]) {
                return Ok(vec![0.0; columns.len()]);
            }
            let params = DecisionTreeClassifierParameters {
                max_depth: Some(max_depth),
                seed: Some(seed),
                ..Default::default()
            };
            let tree = DecisionTreeClassifier::fit(&matrix, &y, params)
                .map_err(|e| format!("smartcore decision tree: {e}"))?;
            Ok(tree.compute_feature_importances(false))
        }
        Target::Values(targets) => {
            let y: Vec<f32> = rows.iter().map(|&i| targets[i]).collect();
            if y.iter().all(|&v| v == y[0]) {
                return Ok(vec![0.0; columns.len()]);
            }
            let params = DecisionTreeRegressorParameters {
                max_depth: Some(max_depth),
                seed: Some(seed),
                ..Default::default()
            };
            let tree = DecisionTreeRegressor::fit(&matrix, &y, params)
                .map_err(|e| format!("smartcore regression tree: {e}"))?;
            tree.compute_feature_importances(false)
                .map_err(|e| format!("smartcore regression tree: {e}"))
        }
    }
}

/// The ensemble's score of every column (mean MDI over the trees that saw
/// it, normalised to sum to 1) and how many columns no tree saw.
pub fn importance_scores(
    x: &MatrixView<'_>,
    target: Target<'_>,
    params: &Params,
    seed: u64,
) -> Result<(Vec<f64>, usize), String> {
    let (rows, cols) = (x.rows(), x.cols());
    let subsample = sample_without_replacement(
        rows,
        params.max_rows,
        &mut SplitMix64::for_stream(seed, 0x5AB5),
    );
    let per_tree = ((subsample.len() as f64 * ROW_SHARE).ceil() as usize).max(2);
    let plan = column_blocks(cols, params.block_size(cols), params.trees, seed);
    let importances = plan
        .par_iter()
        .enumerate()
        .map(|(t, columns)| {
            let mut rng = SplitMix64::for_stream(seed, 0x7EE0_0000 + t as u64);
            let rows: Vec<usize> = sample_without_replacement(subsample.len(), per_tree, &mut rng)
                .into_iter()
                .map(|r| subsample[r])
                .collect();
            tree_importance(x, target, &rows, columns, params.max_depth, rng.next_u64())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut sums = vec![0.0f64; cols];
    let mut seen = vec![0usize; cols];
    for (columns, importance) in plan.iter().zip(&importances) {
        for (&j, &v) in columns.iter().zip(importance) {
            sums[j] += v;
            seen[j] += 1;
        }
    }
    let mut scores: Vec<f64> = sums
        .iter()
        .zip(&seen)
        .map(|(&s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
        .collect();
    let total: f64 = scores.iter().sum();
    if total > 0.0 {
        scores.iter_mut().for_each(|s| *s /= total);
    }
    Ok((scores, seen.iter().filter(|&&n| n == 0).count()))
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

/// Checks labels or targets against the matrix; every value must be finite.
fn check_input<'a>(input: &SelectorInput<'a>) -> Result<Target<'a>, String> {
    let x = &input.train;
    let rows = x.rows();
    let target = match input.task {
        TaskKind::Classification => {
            let labels = input.train_labels.as_slice();
            if labels.len() != rows {
                return Err(format!("{} labels for {rows} training rows", labels.len()));
            }
            if let Some(i) = labels.iter().position(|&l| l >= input.num_classes) {
                return Err(format!(
                    "training row {i} has label {}, but there are {} classes",
                    labels[i], input.num_classes
                ));
            }
            Target::Classes(labels)
        }
        TaskKind::Regression => {
            let targets = input.train_targets.as_slice();
            if targets.len() != rows {
                return Err(format!(
                    "{} targets for {rows} training rows",
                    targets.len()
                ));
            }
            if let Some(i) = targets.iter().position(|t| !t.is_finite()) {
                return Err(format!("training row {i} has target {}", targets[i]));
            }
            Target::Values(targets)
        }
    };
    for i in 0..rows {
        if let Some(j) = x.row(i).iter().position(|v| !v.is_finite()) {
            return Err(format!("training activation [{i}, {j}] is {}", x.row(i)[j]));
        }
    }
    Ok(target)
}

impl SelectorPlugin for TreeImportanceSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        self.rank(input)
            .map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))
    }
}

impl TreeImportanceSelector {
    fn rank(&self, input: &SelectorInput<'_>) -> Result<Selection, String> {
        let (rows, cols) = (input.train.rows(), input.train.cols());
        if cols == 0 {
            return Err("the training matrix has no columns".into());
        }
        if rows < 2 {
            return Err(format!("needs at least 2 training rows, got {rows}"));
        }
        let target = check_input(input)?;
        let (scores, unseen) = importance_scores(&input.train, target, &self.params, input.seed)?;
        let order = rank_descending(&scores);
        let ranked_scores = order.iter().map(|&j| scores[j as usize] as f32).collect();
        let p = &self.params;
        let unseen = if unseen > 0 {
            format!("; {unseen} columns were in no tree (raise `trees`)")
        } else {
            String::new()
        };
        Ok(Selection {
            kind: SelectionKind::Ranking,
            notes: format!(
                "{cols} neurons ranked by mean decrease in impurity of {} smartcore trees \
                 (depth <= {}, {} columns each, {} of {rows} rows){unseen}",
                p.trees,
                p.max_depth,
                p.block_size(cols),
                rows.min(p.max_rows),
            )
            .into(),
            order: order.into(),
            cutoffs: Vec::new().into(),
            scores: ranked_scores,
        })
    }
}

sieve_core::export_selector_plugin!(
    name: "tree-importance",
    description: "Tree-importance neuron ranking: mean decrease in impurity of a seeded \
                  ensemble of smartcore decision trees (random subspaces, row subsamples)",
    open: open,
    validate: validate,
);
