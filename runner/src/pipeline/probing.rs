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
    /// Class labels of train, dev and test rows: the stored ones, or a
    /// control task's (see [`ProbeBench::with_labels`]).
    pub labels: [&'a [u32]; 3],
    pub task: Task,
    pub settings: &'a ProbeSettings,
    pub seed: u64,
}

impl<'a> ProbeBench<'a> {
    /// A bench over the stored splits with their own labels.
    pub fn new(
        [train, dev, test]: [&'a StoredSplit; 3],
        task: Task,
        settings: &'a ProbeSettings,
        seed: u64,
    ) -> Self {
        ProbeBench {
            train,
            dev,
            test,
            labels: [
                train.targets.labels(),
                dev.targets.labels(),
                test.targets.labels(),
            ],
            task,
            settings,
            seed,
        }
    }

    /// The same bench with other labels for the same rows (a control task).
    pub fn with_labels(&self, labels: [&'a [u32]; 3]) -> ProbeBench<'a> {
        ProbeBench { labels, ..*self }
    }

    /// Trains a probe on `columns` of train and scores it on dev and test.
    pub fn score(&self, columns: &Columns) -> Result<(Score, TrainedProbe)> {
        let cols = self.train.cols;
        let x = columns.gather(self.train.activations(), cols);
        let probe = train_probe(
            &x,
            self.train.rows,
            columns.len(),
            self.labels[0],
            self.train.targets.values(),
            self.task,
            self.settings,
            self.seed,
        )?;
        drop(x);
        let score = Score {
            dev: self.evaluate(&probe, self.dev, self.labels[1], columns),
            test: self.evaluate(&probe, self.test, self.labels[2], columns),
        };
        Ok((score, probe))
    }

    fn evaluate(
        &self,
        probe: &TrainedProbe,
        split: &StoredSplit,
        labels: &[u32],
        columns: &Columns,
    ) -> f64 {
        let x = columns.gather(split.activations(), split.cols);
        match self.task {
            Task::Classification { .. } => accuracy(&probe.predict_classes(&x, split.rows), labels),
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
                dev: majority_baseline(self.labels[0], self.labels[1]),
                test: majority_baseline(self.labels[0], self.labels[2]),
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
