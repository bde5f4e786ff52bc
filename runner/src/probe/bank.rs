//! Probe banks: several probes over column ranges of one training matrix.
//!
//! The matrix is checked and standardised once (each column on its own, so
//! a range of the standardised matrix is the standardised range), and
//! rounded to bf16 once when the products are bf16. Each call to
//! [`BankInput::train`] then trains one probe per range, together over one
//! pass of shared mini-batches (the paper's Adam on the CPU), and each
//! probe is what [`train_probe`] gives on its range's columns with the same
//! seed. The top-N search trains all its groups of candidates (prefixes of
//! one ranked matrix) from one input.

use std::ops::Range;

use super::data::{self, Problem, RawInput};
use super::{
    bf16, fitted_probe, planned_batch_steps, solver_adam, train_probe, Precision, ProbeError,
    ProbeSettings, Solver, Task, TrainedProbe,
};
use crate::util::progress::Reservation;

/// A training matrix ready for probe banks over its column ranges.
pub struct BankInput<'a> {
    raw: RawInput<'a>,
    settings: &'a ProbeSettings,
    seed: u64,
    prepared: Prepared<'a>,
}

/// The matrix as the settings' bank solver reads it.
enum Prepared<'a> {
    /// Each probe trains alone (FISTA, a GPU device).
    Alone,
    /// Checked and standardised once (the paper's Adam, f32 products).
    F32(Problem<'a>),
    /// Checked, standardised and rounded once (bf16 products).
    Bf16(bf16::RoundedProblem<'a>),
}

impl<'a> BankInput<'a> {
    /// Checks `x` ([rows, cols] row-major) and its targets, and prepares it
    /// as the settings need.
    #[allow(clippy::too_many_arguments)] // the public API mirrors train_probe's
    pub fn new(
        x: &'a [f32],
        (rows, cols): (usize, usize),
        labels: &'a [u32],
        targets: &'a [f32],
        task: Task,
        settings: &'a ProbeSettings,
        seed: u64,
    ) -> Result<Self, ProbeError> {
        settings.validate()?;
        let raw = RawInput::new(x, (rows, cols), labels, targets, task);
        let banked = settings.solver == Solver::Adam && settings.device == "cpu";
        let standardize = settings.standardize;
        let prepared = match (banked, settings.precision) {
            (false, _) => Prepared::Alone,
            (true, Precision::F32) => Prepared::F32(raw.clone().into_problem(standardize)?),
            (true, Precision::Bf16) => {
                Prepared::Bf16(bf16::RoundedProblem::new(raw.clone(), standardize)?)
            }
        };
        Ok(Self {
            raw,
            settings,
            seed,
            prepared,
        })
    }

    /// Columns of the matrix.
    pub fn cols(&self) -> usize {
        self.raw.cols
    }

    /// One probe per range of columns, in the order of `ranges`.
    pub fn train(&self, ranges: &[Range<usize>]) -> Result<Vec<TrainedProbe>, ProbeError> {
        let cols = self.raw.cols;
        if let Some(bad) = ranges.iter().find(|r| r.is_empty() || r.end > cols) {
            return Err(ProbeError::InvalidSettings(format!(
                "probe bank: column range {bad:?} is empty or outside the {cols} columns"
            )));
        }
        let s = self.settings;
        let (fitted, outputs, standardization) = match &self.prepared {
            Prepared::Alone => {
                // One after another: their ETA covers them all.
                let steps = planned_batch_steps(s, self.raw.rows) * ranges.len() as u64;
                let _planned = Reservation::new(steps);
                return ranges.iter().map(|r| self.train_alone(r)).collect();
            }
            // One f32 probe trains faster alone: its products use every thread.
            Prepared::F32(_) if ranges.len() == 1 => {
                return self.train_alone(&ranges[0]).map(|p| vec![p])
            }
            Prepared::Bf16(_) if ranges.iter().any(|r| !bf16_aligned(r)) => {
                return self.train_unaligned(ranges)
            }
            Prepared::Bf16(p) => (
                bf16::train_adam_bank_bf16(p, ranges, s, self.seed, None)?,
                p.outputs,
                &p.standardization,
            ),
            Prepared::F32(p) => (
                solver_adam::train_adam_bank(p, ranges, s, self.seed)?,
                p.outputs,
                &p.standardization,
            ),
        };
        Ok(fitted
            .into_iter()
            .zip(ranges)
            .map(|(f, r)| {
                let standardization = standardization
                    .as_ref()
                    .map(|(mean, std)| (mean[r.clone()].to_vec(), std[r.clone()].to_vec()));
                fitted_probe(f, outputs, r.len(), standardization, "")
            })
            .collect())
    }

    /// The probe of `range` trained on its own copy of the columns.
    fn train_alone(&self, range: &Range<usize>) -> Result<TrainedProbe, ProbeError> {
        let raw = &self.raw;
        let sub = data::column_range(raw.x, raw.cols, range.clone());
        train_probe(
            &sub,
            raw.rows,
            range.len(),
            raw.labels,
            raw.targets,
            raw.task,
            self.settings,
            self.seed,
        )
    }

    /// bf16 ranges not on a 32-column step (a model with 312 hidden units,
    /// say): the aligned ones train as a bank, each other one alone.
    fn train_unaligned(&self, ranges: &[Range<usize>]) -> Result<Vec<TrainedProbe>, ProbeError> {
        let aligned: Vec<Range<usize>> =
            ranges.iter().filter(|r| bf16_aligned(r)).cloned().collect();
        let mut banked = if aligned.is_empty() {
            Vec::new()
        } else {
            self.train(&aligned)?
        }
        .into_iter();
        ranges
            .iter()
            .map(|r| match bf16_aligned(r) {
                true => banked.next().ok_or_else(|| {
                    ProbeError::InvalidSettings("probe bank returned too few probes".into())
                }),
                false => self.train_alone(r),
            })
            .collect()
    }
}

/// Whether a bf16 bank can read `range` in place: its layouts hold the
/// columns in steps of 32 (layer ranges of 384- or 768-wide models are).
fn bf16_aligned(range: &Range<usize>) -> bool {
    range.start.is_multiple_of(bf16::TILE_DEPTH)
}
