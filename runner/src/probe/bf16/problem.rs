//! The training problem of bf16 probes: the rows are only ever read in
//! bf16, so they are checked, standardised and rounded in one pass, and no
//! standardised f32 copy of the matrix is made (for the 2,688 WSJ columns
//! that copy is 215 MB written and read again, and as many fresh pages).

use super::super::data::{
    check_finite, check_shape, checked_column_stats, checked_targets, map_standardized, RawInput,
};
use super::super::error::ProbeError;
use super::super::objective::Targets;
use super::layout::{f32_to_bf16, rounded_matrix};

/// A checked training matrix in bf16 (z-scored first when asked).
pub(crate) struct RoundedProblem<'a> {
    /// Row-major [rows, cols].
    pub rounded: Vec<u16>,
    pub rows: usize,
    pub cols: usize,
    pub outputs: usize,
    pub targets: Targets<'a>,
    /// (mean, std) per column when the data were z-scored.
    pub standardization: Option<(Vec<f32>, Vec<f32>)>,
}

impl<'a> RoundedProblem<'a> {
    /// The same checks and values as `RawInput::into_problem` followed by
    /// rounding, bit for bit.
    pub fn new(raw: RawInput<'a>, standardize: bool) -> Result<Self, ProbeError> {
        check_shape(raw.x, raw.rows, raw.cols)?;
        let targets = checked_targets(raw.task, raw.labels, raw.targets, raw.rows)?;
        let (rounded, standardization) = if standardize {
            let (mean, std) = checked_column_stats(raw.x, raw.cols)?;
            let rounded = map_standardized(raw.x, raw.cols, (&mean, &std), f32_to_bf16);
            (rounded, Some((mean, std)))
        } else {
            check_finite(raw.x, raw.cols)?;
            (rounded_matrix(raw.x), None)
        };
        Ok(Self {
            rounded,
            rows: raw.rows,
            cols: raw.cols,
            outputs: raw.task.outputs(),
            targets,
            standardization,
        })
    }
}
