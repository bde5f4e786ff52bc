//! Training and scoring probes on column subsets of the stored activations.

use anyhow::Result;

use std::ops::Range;

use crate::probe::{
    accuracy, majority_baseline, pearson, train_probe, train_probe_bank, train_probe_streamed,
    ProbeSettings, RowBlocks, Task, TrainedProbe,
};
pub use crate::store::Columns;
use crate::store::StoredSplit;

/// `store.in_memory_mb` when the spec does not say.
pub const DEFAULT_IN_MEMORY_MB: usize = 2048;

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
    /// Largest gathered matrix held in memory (bytes); larger ones are
    /// streamed from the store a block at a time (`store.in_memory_mb`).
    pub in_memory_bytes: usize,
}

/// Columns of a stored split, read a block of rows at a time.
struct SplitColumns<'a> {
    split: &'a StoredSplit,
    columns: &'a Columns,
}

impl RowBlocks for SplitColumns<'_> {
    fn rows(&self) -> usize {
        self.split.rows
    }

    fn cols(&self) -> usize {
        self.columns.len()
    }

    fn read(&self, rows: std::ops::Range<usize>) -> Result<Vec<f32>, String> {
        self.split
            .gather_rows(self.columns, rows)
            .map_err(|e| format!("{e:#}"))
    }
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
            in_memory_bytes: DEFAULT_IN_MEMORY_MB << 20,
        }
    }

    /// The same bench with another in-memory limit (MiB).
    pub fn with_in_memory_mb(self, mb: usize) -> ProbeBench<'a> {
        ProbeBench {
            in_memory_bytes: mb << 20,
            ..self
        }
    }

    /// Whether `columns` of `split` fit the in-memory limit.
    pub fn fits_in_memory(&self, split: &StoredSplit, columns: &Columns) -> bool {
        split.rows.saturating_mul(columns.len()).saturating_mul(4) <= self.in_memory_bytes
    }

    /// Rows per block when a matrix of `width` columns is streamed: a
    /// quarter of the limit, so a block, its standardised copy and the
    /// tensor stay well inside it.
    fn block_rows(&self, width: usize) -> usize {
        (self.in_memory_bytes / 4 / (4 * width.max(1))).max(1024)
    }

    /// The same bench with other labels for the same rows (a control task).
    pub fn with_labels(&self, labels: [&'a [u32]; 3]) -> ProbeBench<'a> {
        ProbeBench { labels, ..*self }
    }

    /// Trains a probe on `columns` of train and scores it on dev and test.
    pub fn score(&self, columns: &Columns) -> Result<(Score, TrainedProbe)> {
        let probe = if self.fits_in_memory(self.train, columns) {
            let x = self.train.gather(columns)?;
            train_probe(
                &x,
                self.train.rows,
                columns.len(),
                self.labels[0],
                self.train.targets.values(),
                self.task,
                self.settings,
                self.seed,
            )?
        } else {
            train_probe_streamed(
                &SplitColumns {
                    split: self.train,
                    columns,
                },
                self.block_rows(columns.len()),
                self.labels[0],
                self.train.targets.values(),
                self.task,
                self.settings,
                self.seed,
            )?
        };
        self.scored(probe, columns)
    }

    /// Trains one probe per range of positions in `base` (the probe of
    /// `r` sees `base.sub(r)`) and scores each on dev and test: what
    /// [`ProbeBench::score`] gives for each, trained together over one pass
    /// of shared mini-batches when `base` fits in memory
    /// (`train_probe_bank`: same probes, less copying, parallel over probes).
    pub fn score_many(
        &self,
        base: &Columns,
        ranges: &[Range<usize>],
    ) -> Result<Vec<(Score, TrainedProbe)>> {
        let end = ranges.iter().map(|r| r.end).max().unwrap_or(0);
        let span = base.sub(0..end);
        if ranges.len() < 2 || !self.fits_in_memory(self.train, &span) {
            return ranges
                .iter()
                .map(|r| self.score(&base.sub(r.clone())))
                .collect();
        }
        let x = self.train.gather(&span)?;
        let probes = train_probe_bank(
            &x,
            self.train.rows,
            end,
            self.labels[0],
            self.train.targets.values(),
            self.task,
            self.settings,
            self.seed,
            ranges,
        )?;
        drop(x);
        probes
            .into_iter()
            .zip(ranges)
            .map(|(probe, r)| self.scored(probe, &base.sub(r.clone())))
            .collect()
    }

    /// `probe` (trained on `columns`) with its dev and test scores.
    fn scored(&self, probe: TrainedProbe, columns: &Columns) -> Result<(Score, TrainedProbe)> {
        let score = Score {
            dev: self.evaluate(&probe, self.dev, self.labels[1], columns)?,
            test: self.evaluate(&probe, self.test, self.labels[2], columns)?,
        };
        Ok((score, probe))
    }

    fn evaluate(
        &self,
        probe: &TrainedProbe,
        split: &StoredSplit,
        labels: &[u32],
        columns: &Columns,
    ) -> Result<f64> {
        let block = if self.fits_in_memory(split, columns) {
            split.rows.max(1)
        } else {
            self.block_rows(columns.len())
        };
        let mut classes = Vec::new();
        let mut values = Vec::new();
        for start in (0..split.rows).step_by(block) {
            let rows = start..(start + block).min(split.rows);
            let len = rows.len();
            let x = split.gather_rows(columns, rows)?;
            match self.task {
                Task::Classification { .. } => classes.extend(probe.predict_classes(&x, len)),
                Task::Regression => values.extend(probe.predict_values(&x, len)),
            }
        }
        Ok(match self.task {
            Task::Classification { .. } => accuracy(&classes, labels),
            Task::Regression => pearson(&values, split.targets.values()),
        })
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
