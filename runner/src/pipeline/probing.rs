//! Training and scoring probes on column subsets of the stored activations.

use std::ops::Range;

use anyhow::Result;
use rayon::prelude::*;

use crate::probe::{
    accuracy, majority_baseline, pearson, train_probe, ProbeSettings, Task, TrainedProbe,
};
use crate::store::StoredSplit;

/// Which columns a probe sees.
#[derive(Debug, Clone)]
pub enum Columns {
    /// A contiguous block, e.g. the layers 0..=k.
    Range(Range<usize>),
    /// Any set of columns, in the order given.
    List(Vec<usize>),
}

impl Columns {
    pub fn len(&self) -> usize {
        match self {
            Columns::Range(r) => r.len(),
            Columns::List(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies these columns of a row-major matrix into a new one.
    pub fn gather(&self, matrix: &[f32], cols: usize) -> Vec<f32> {
        let width = self.len();
        let rows = matrix.len().checked_div(cols).unwrap_or(0);
        let mut out = vec![0f32; rows * width];
        if width == 0 {
            return out;
        }
        out.par_chunks_mut(width)
            .zip(matrix.par_chunks(cols))
            .for_each(|(dst, src)| match self {
                Columns::Range(r) => dst.copy_from_slice(&src[r.clone()]),
                Columns::List(list) => {
                    for (d, &c) in dst.iter_mut().zip(list) {
                        *d = src[c];
                    }
                }
            });
        out
    }
}

/// A probe's score on dev and test (accuracy, or Pearson r for regression).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    pub dev: f64,
    pub test: f64,
}

/// The three splits and how probes are trained on them.
pub struct ProbeBench<'a> {
    pub train: &'a StoredSplit,
    pub dev: &'a StoredSplit,
    pub test: &'a StoredSplit,
    pub task: Task,
    pub settings: &'a ProbeSettings,
    pub seed: u64,
}

impl ProbeBench<'_> {
    /// Trains a probe on `columns` of train and scores it on dev and test.
    pub fn score(&self, columns: &Columns) -> Result<(Score, TrainedProbe)> {
        let cols = self.train.cols;
        let x = columns.gather(self.train.activations(), cols);
        let probe = train_probe(
            &x,
            self.train.rows,
            columns.len(),
            self.train.targets.labels(),
            self.train.targets.values(),
            self.task,
            self.settings,
            self.seed,
        )?;
        drop(x);
        let score = Score {
            dev: self.evaluate(&probe, self.dev, columns),
            test: self.evaluate(&probe, self.test, columns),
        };
        Ok((score, probe))
    }

    fn evaluate(&self, probe: &TrainedProbe, split: &StoredSplit, columns: &Columns) -> f64 {
        let x = columns.gather(split.activations(), split.cols);
        match self.task {
            Task::Classification { .. } => accuracy(
                &probe.predict_classes(&x, split.rows),
                split.targets.labels(),
            ),
            Task::Regression => pearson(
                &probe.predict_values(&x, split.rows),
                split.targets.values(),
            ),
        }
    }

    /// Always predicting train's most frequent class (classification only).
    pub fn majority_baseline(&self) -> Option<Score> {
        match self.task {
            Task::Classification { .. } => Some(Score {
                dev: majority_baseline(self.train.targets.labels(), self.dev.targets.labels()),
                test: majority_baseline(self.train.targets.labels(), self.test.targets.labels()),
            }),
            Task::Regression => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_picks_the_named_columns_of_every_row() {
        let matrix: Vec<f32> = (0..12).map(|v| v as f32).collect(); // 3 x 4
        assert_eq!(
            Columns::Range(1..3).gather(&matrix, 4),
            vec![1., 2., 5., 6., 9., 10.]
        );
        assert_eq!(
            Columns::List(vec![3, 0]).gather(&matrix, 4),
            vec![3., 0., 7., 4., 11., 8.]
        );
    }
}
