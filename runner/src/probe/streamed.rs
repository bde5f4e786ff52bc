//! Probes on training matrices larger than memory: rows are read from a
//! [`RowBlocks`] source (the activation store) one block at a time, for the
//! column statistics and for every epoch. Only the Adam recipe streams;
//! FISTA's full-batch gradients would read the whole matrix per iteration.

use std::ops::Range;

use super::data::{check_finite, checked_targets, standardize_rows};
use super::error::ProbeError;
use super::settings::Precision;
use super::settings::{ProbeSettings, Solver, Task};
use super::solver_adam::train_adam_blocks;
use super::{fitted_probe, TrainedProbe};

/// Rows of a matrix that is read in pieces.
pub trait RowBlocks: Sync {
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;
    /// Rows `rows` as a row-major `[len, cols]` matrix.
    fn read(&self, rows: Range<usize>) -> Result<Vec<f32>, String>;
}

/// [`super::train_probe`] on rows read `block_rows` at a time (rounded
/// to whole mini-batches, so file-order training sees the same batches as
/// in memory).
pub fn train_probe_streamed(
    source: &dyn RowBlocks,
    block_rows: usize,
    labels: &[u32],
    targets: &[f32],
    task: Task,
    settings: &ProbeSettings,
    seed: u64,
) -> Result<TrainedProbe, ProbeError> {
    settings.validate()?;
    if settings.solver != Solver::Adam {
        return Err(ProbeError::InvalidSettings(format!(
            "this training matrix ({} rows x {} columns) is larger than store.in_memory_mb, and the {:?} solver needs it in memory; raise store.in_memory_mb or use `solver: adam`",
            source.rows(),
            source.cols(),
            settings.solver
        )));
    }
    let (rows, cols) = (source.rows(), source.cols());
    if rows == 0 || cols == 0 {
        return Err(ProbeError::EmptyInput { rows, cols });
    }
    let checked = checked_targets(task, labels, targets, rows)?;
    let block_rows = (block_rows / settings.batch_size).max(1) * settings.batch_size;
    let standardization = if settings.standardize {
        Some(streamed_column_stats(source, block_rows)?)
    } else {
        None
    };
    let mut load = |start: usize, len: usize| -> Result<Vec<f32>, ProbeError> {
        let x = read_checked(source, start..start + len)?;
        let x = match &standardization {
            Some((mean, std)) => standardize_rows(&x, cols, mean, std),
            None => x,
        };
        Ok(x)
    };
    let fitted = train_adam_blocks(
        (rows, cols, task.outputs()),
        checked,
        block_rows,
        &mut load,
        settings,
        seed,
    )?;
    Ok(fitted_probe(
        fitted,
        task.outputs(),
        cols,
        standardization,
        &format!(
            " streamed in blocks of {block_rows} rows{}",
            // The bf16 bank lays out batches of a matrix held in memory.
            if settings.precision == Precision::Bf16 {
                " (precision f32: bf16 needs the rows in memory)"
            } else {
                ""
            }
        ),
    ))
}

/// Rows `range`, with non-finite values reported at their global row.
fn read_checked(source: &dyn RowBlocks, range: Range<usize>) -> Result<Vec<f32>, ProbeError> {
    let x = source.read(range.clone()).map_err(ProbeError::Source)?;
    if x.len() != range.len() * source.cols() {
        return Err(ProbeError::Source(format!(
            "rows {range:?} came back with {} values, expected {}",
            x.len(),
            range.len() * source.cols()
        )));
    }
    check_finite(&x, source.cols()).map_err(|e| match e {
        ProbeError::NonFiniteInput { row, col, value } => ProbeError::NonFiniteInput {
            row: row + range.start,
            col,
            value,
        },
        other => other,
    })?;
    Ok(x)
}

/// Mean and population std of every column (ddof 0), two passes over the
/// blocks in f64; a column whose values are all equal gets std 0, as in
/// memory.
fn streamed_column_stats(
    source: &dyn RowBlocks,
    block_rows: usize,
) -> Result<(Vec<f32>, Vec<f32>), ProbeError> {
    let (rows, cols) = (source.rows(), source.cols());
    let mut sum = vec![0.0f64; cols];
    let mut min = vec![f32::INFINITY; cols];
    let mut max = vec![f32::NEG_INFINITY; cols];
    for start in (0..rows).step_by(block_rows) {
        let x = read_checked(source, start..(start + block_rows).min(rows))?;
        for row in x.chunks_exact(cols) {
            for (j, &v) in row.iter().enumerate() {
                sum[j] += v as f64;
                min[j] = min[j].min(v);
                max[j] = max[j].max(v);
            }
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / rows as f64).collect();
    let mut sq = vec![0.0f64; cols];
    for start in (0..rows).step_by(block_rows) {
        let x = read_checked(source, start..(start + block_rows).min(rows))?;
        for row in x.chunks_exact(cols) {
            for ((s, &v), &m) in sq.iter_mut().zip(row).zip(&mean) {
                let d = v as f64 - m;
                *s += d * d;
            }
        }
    }
    let std = (0..cols)
        .map(|j| {
            if min[j] == max[j] {
                0.0
            } else {
                (sq[j] / rows as f64).sqrt() as f32
            }
        })
        .collect();
    Ok((mean.iter().map(|&m| m as f32).collect(), std))
}
