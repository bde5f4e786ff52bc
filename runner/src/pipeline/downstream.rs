//! The spec's `downstream` section: the user's classifiers trained on the
//! features the selection kept, reported next to the probe on the same
//! features.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::downstream::{train_and_score, DownstreamScore, DownstreamSpec};
use crate::probe::Task;

use super::probing::{Columns, ProbeBench, Score};
use super::saved::SavedResults;

/// Every downstream classifier's scores on one feature set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownstreamSummary {
    /// `selection` (the CCFS neurons) or `oracle` (all features, when the
    /// spec selects nothing).
    pub feature_set: String,
    pub features: usize,
    /// The linear probe's scores on the same features, for comparison.
    pub probe: Score,
    pub classifiers: Vec<DownstreamScore>,
}

/// Trains every classifier the spec names on the selected columns.
pub fn run_downstream(
    bench: &ProbeBench<'_>,
    results: &SavedResults,
    spec: &DownstreamSpec,
) -> Result<DownstreamSummary> {
    let Task::Classification { num_classes } = bench.task else {
        bail!("downstream classifiers need a classification task");
    };
    let (feature_set, columns, probe) = feature_set(bench, results)?;
    let train = bench.train.gather(&columns)?;
    let dev = bench.dev.gather(&columns)?;
    let test = bench.test.gather(&columns)?;
    let mut classifiers = Vec::with_capacity(spec.classifiers.len());
    for &kind in &spec.classifiers {
        let score = train_and_score(
            kind,
            spec,
            columns.len(),
            num_classes,
            (&train, bench.labels[0]),
            (&dev, bench.labels[1]),
            (&test, bench.labels[2]),
            bench.seed,
        )?;
        info!(
            "downstream {} on {} {feature_set} features: {:.2}% test in {:.1} s",
            kind.name(),
            columns.len(),
            score.test * 100.0,
            score.seconds
        );
        classifiers.push(score);
    }
    Ok(DownstreamSummary {
        feature_set: feature_set.into(),
        features: columns.len(),
        probe,
        classifiers,
    })
}

/// The final selection's columns, else every column (the oracle's).
fn feature_set(
    bench: &ProbeBench<'_>,
    results: &SavedResults,
) -> Result<(&'static str, Columns, Score)> {
    if let (Some(selection), Some(columns)) =
        (&results.outcome.selection, results.selected_columns())
    {
        let probe = Score {
            dev: selection.dev,
            test: selection.test,
        };
        return Ok(("selection", Columns::List(columns), probe));
    }
    let oracle = super::layers::oracle_score(&results.layers)?;
    Ok(("oracle", Columns::Range(0..bench.train.cols), oracle))
}
