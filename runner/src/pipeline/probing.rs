//! Training and scoring probes on column subsets of the stored activations.

use anyhow::Result;

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::probe::{
    accuracy, majority_baseline, pearson, planned_batch_steps, train_probe, train_probe_streamed,
    BankInput, ProbeSettings, RowBlocks, Task, TrainedProbe,
};
pub use crate::store::Columns;
use crate::store::StoredSplit;
use crate::util::progress::Reservation;

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
    /// Where columns gathered once are held for later gathers (see
    /// [`ProbeBench::hold`]).
    pub held: Option<&'a HeldColumns>,
}

/// Columns of the three splits gathered once and held in memory: the
/// LayerSelector's layers, of which the clustering, the ranking and the
/// top-N search each read a subset. Reading a subset from the held rows
/// (as wide as the chosen layers) is cheaper than from the store's (as
/// wide as every feature of the model).
#[derive(Default)]
pub struct HeldColumns(OnceLock<Held>);

struct Held {
    columns: Columns,
    /// Train, dev and test, row-major.
    splits: [Vec<f32>; 3],
}

impl Held {
    /// `columns` of split `which` (0 train, 1 dev, 2 test) when they are
    /// all held: the held matrix itself when they are exactly the held
    /// columns, else a copy.
    fn columns_of(&self, which: usize, columns: &Columns) -> Option<Cow<'_, [f32]>> {
        let positions = columns.positions_in(&self.columns)?;
        let matrix = &self.splits[which];
        let width = self.columns.len();
        let every_column = positions.len() == width && positions.iter().eq(0..width);
        Some(match every_column {
            true => Cow::Borrowed(matrix.as_slice()),
            false => Cow::Owned(positions.gather(matrix, width)),
        })
    }
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
            held: None,
        }
    }

    /// The same bench holding the columns [`ProbeBench::hold`] asks for in
    /// `held`.
    pub fn with_held(self, held: &'a HeldColumns) -> ProbeBench<'a> {
        ProbeBench {
            held: Some(held),
            ..self
        }
    }

    /// Gathers `columns` of the three splits and holds them for later
    /// gathers, when the bench has a place for them (the first columns
    /// asked for are kept) and they fit in memory.
    pub fn hold(&self, columns: &Columns) -> Result<()> {
        let Some(slot) = self.held else {
            return Ok(());
        };
        let splits = [self.train, self.dev, self.test];
        if slot.0.get().is_some() || !splits.iter().all(|s| self.fits_in_memory(s, columns)) {
            return Ok(());
        }
        let [train, dev, test] = splits.map(|split| split.gather(columns));
        let held = Held {
            columns: columns.clone(),
            splits: [train?, dev?, test?],
        };
        // Only this call fills the slot: no other thread holds the bench
        // while the selection starts.
        let _ = slot.0.set(held);
        Ok(())
    }

    /// `columns` of every row of `split`: from the held columns when they
    /// include them (borrowed when they are exactly these), else from the
    /// store.
    pub fn gather(&self, split: &StoredSplit, columns: &Columns) -> Result<Cow<'a, [f32]>> {
        if let Some(held) = self.held.and_then(|slot| slot.0.get()) {
            let which = [self.train, self.dev, self.test]
                .iter()
                .position(|s| std::ptr::eq(*s, split));
            if let Some(x) = which.and_then(|which| held.columns_of(which, columns)) {
                return Ok(x);
            }
        }
        Ok(Cow::Owned(split.gather(columns)?))
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
        let probe = self.train(columns)?;
        self.scored(probe, columns)
    }

    /// Trains a probe on `columns` of train (streamed when they do not fit
    /// in memory).
    pub fn train(&self, columns: &Columns) -> Result<TrainedProbe> {
        let probe = if self.fits_in_memory(self.train, columns) {
            let x = self.gather(self.train, columns)?;
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
        Ok(probe)
    }

    /// Trains one probe per range of positions in `base` (the probe of
    /// `r` sees `base.sub(r)`) and scores each on dev and test: what
    /// [`ProbeBench::score`] gives for each, trained together as one bank
    /// (see [`ColumnBank`]) when there are several.
    pub fn score_many(
        &self,
        base: &Columns,
        ranges: &[Range<usize>],
    ) -> Result<Vec<(Score, TrainedProbe)>> {
        if ranges.len() < 2 {
            return ranges
                .iter()
                .map(|r| self.score(&base.sub(r.clone())))
                .collect();
        }
        let end = ranges.iter().map(|r| r.end).max().unwrap_or(0);
        self.with_bank(&base.sub(0..end), |bank| bank.score(ranges))
    }

    /// Calls `f` with a [`ColumnBank`] over `base`: its columns of every
    /// split gathered once (and the training matrix prepared once) when
    /// they fit in memory.
    pub fn with_bank<R>(
        &self,
        base: &Columns,
        f: impl FnOnce(&ColumnBank<'_>) -> Result<R>,
    ) -> Result<R> {
        if !self.fits_in_memory(self.train, base) {
            return f(&ColumnBank {
                bench: self,
                base,
                gathered: None,
            });
        }
        let started = std::time::Instant::now();
        let x = self.gather(self.train, base)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let input = BankInput::new(
            &x,
            (self.train.rows, base.len()),
            self.labels[0],
            self.train.targets.values(),
            self.task,
            self.settings,
            self.seed,
        )?;
        let held = |split: &StoredSplit| -> Result<Option<Cow<'a, [f32]>>> {
            match self.fits_in_memory(split, base) {
                true => Ok(Some(self.gather(split, base)?)),
                false => Ok(None),
            }
        };
        let prepared = started.elapsed().as_secs_f64();
        let gathered = Gathered {
            input,
            dev: held(self.dev)?,
            test: held(self.test)?,
        };
        tracing::debug!(
            "bank of {} columns: {train_seconds:.3} s gathering train, {:.3} s preparing it, {:.3} s \
             gathering dev and test",
            base.len(),
            prepared - train_seconds,
            started.elapsed().as_secs_f64() - prepared
        );
        f(&ColumnBank {
            bench: self,
            base,
            gathered: Some(gathered),
        })
    }

    /// `probe` (trained on `columns`) with its dev and test scores.
    pub fn scored(&self, probe: TrainedProbe, columns: &Columns) -> Result<(Score, TrainedProbe)> {
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
        let mut predictions = Predictions::default();
        if self.fits_in_memory(split, columns) {
            let x = self.gather(split, columns)?;
            predictions.add(self.task, probe, &x, split.rows);
            return Ok(predictions.metric(self.task, labels, split));
        }
        let block = self.block_rows(columns.len());
        for start in (0..split.rows).step_by(block) {
            let rows = start..(start + block).min(split.rows);
            let len = rows.len();
            let x = split.gather_rows(columns, rows)?;
            predictions.add(self.task, probe, &x, len);
        }
        Ok(predictions.metric(self.task, labels, split))
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

/// A probe's predictions on a split, and their score.
#[derive(Default)]
struct Predictions {
    classes: Vec<u32>,
    values: Vec<f32>,
}

impl Predictions {
    /// Predictions for the `rows` rows of `x` (the probe's columns).
    fn add(&mut self, task: Task, probe: &TrainedProbe, x: &[f32], rows: usize) {
        match task {
            Task::Classification { .. } => self.classes.extend(probe.predict_classes(x, rows)),
            Task::Regression => self.values.extend(probe.predict_values(x, rows)),
        }
    }

    /// Accuracy (classification) or Pearson r (regression).
    fn metric(&self, task: Task, labels: &[u32], split: &StoredSplit) -> f64 {
        match task {
            Task::Classification { .. } => accuracy(&self.classes, labels),
            Task::Regression => pearson(&self.values, split.targets.values()),
        }
    }
}

/// Probes over column ranges of one set of columns (`base`), each trained
/// and scored as [`ProbeBench::score`] would on `base.sub(range)`: the
/// columns of every split are gathered once, the training matrix is
/// checked, standardised (and rounded for bf16) once, and every call to
/// [`ColumnBank::score`] trains its ranges as one bank. The top-N search
/// trains all its groups of candidates, prefixes of the ranked columns,
/// from one.
pub struct ColumnBank<'b> {
    bench: &'b ProbeBench<'b>,
    base: &'b Columns,
    /// `None` when the columns do not fit in memory: each probe is then
    /// trained and scored alone, streaming.
    gathered: Option<Gathered<'b>>,
}

struct Gathered<'x> {
    input: BankInput<'x>,
    dev: Option<Cow<'x, [f32]>>,
    test: Option<Cow<'x, [f32]>>,
}

impl ColumnBank<'_> {
    /// The probes of `ranges` (positions in `base`) with their scores.
    pub fn score(&self, ranges: &[Range<usize>]) -> Result<Vec<(Score, TrainedProbe)>> {
        let bench = self.bench;
        let Some(gathered) = &self.gathered else {
            // Streamed one after another: their ETA covers them all.
            let steps = planned_batch_steps(bench.settings, bench.train.rows) * ranges.len() as u64;
            let _planned = Reservation::new(steps);
            return ranges
                .iter()
                .map(|r| bench.score(&self.base.sub(r.clone())))
                .collect();
        };
        let probes = gathered.input.train(ranges)?;
        probes
            .into_par_iter()
            .zip(ranges.par_iter())
            .map(|(probe, r)| {
                let dev = self.evaluate(&probe, gathered.dev.as_deref(), bench.dev, 1, r)?;
                let test = self.evaluate(&probe, gathered.test.as_deref(), bench.test, 2, r)?;
                Ok((Score { dev, test }, probe))
            })
            .collect()
    }

    /// The score on split `which` (1 dev, 2 test) of a probe of `range`,
    /// from the gathered columns when they were held.
    fn evaluate(
        &self,
        probe: &TrainedProbe,
        held: Option<&[f32]>,
        split: &StoredSplit,
        which: usize,
        range: &Range<usize>,
    ) -> Result<f64> {
        let labels = self.bench.labels[which];
        let Some(all) = held else {
            return self
                .bench
                .evaluate(probe, split, labels, &self.base.sub(range.clone()));
        };
        // A probe of every column reads the held matrix as it is.
        let x = match range.len() == self.base.len() {
            true => std::borrow::Cow::Borrowed(all),
            false => {
                std::borrow::Cow::Owned(Columns::Range(range.clone()).gather(all, self.base.len()))
            }
        };
        let mut predictions = Predictions::default();
        predictions.add(self.bench.task, probe, &x, split.rows);
        Ok(predictions.metric(self.bench.task, labels, split))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_columns_give_what_the_full_rows_give() {
        // Three splits of 3, 2 and 4 rows of 25 columns; columns 10..20 held.
        let full: Vec<Vec<f32>> = [3, 2, 4]
            .iter()
            .enumerate()
            .map(|(s, &rows)| (0..rows * 25).map(|i| (s * 1000 + i) as f32).collect())
            .collect();
        let columns = Columns::Range(10..20);
        let held = Held {
            splits: [0, 1, 2].map(|s| columns.gather(&full[s], 25)),
            columns,
        };
        for (which, full) in full.iter().enumerate() {
            for wanted in [
                Columns::List(vec![18, 11, 12]),
                Columns::Range(12..15),
                Columns::List((10..20).collect()),
            ] {
                let got = held.columns_of(which, &wanted).expect("held");
                assert_eq!(
                    *got,
                    *wanted.gather(full, 25),
                    "{wanted:?} of split {which}"
                );
            }
            // Exactly the held columns: the held matrix itself, no copy.
            let all = held.columns_of(which, &Columns::List((10..20).collect()));
            assert!(matches!(all, Some(Cow::Borrowed(_))));
            // Any column not held: the store has to be read.
            assert!(held.columns_of(which, &Columns::Range(5..12)).is_none());
            assert!(held
                .columns_of(which, &Columns::List(vec![19, 20]))
                .is_none());
        }
    }
}
