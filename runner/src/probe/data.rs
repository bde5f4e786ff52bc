//! Input checks, standardisation and the tensor view of a training problem.

use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;

use super::error::ProbeError;
use super::objective::Targets;
use super::settings::Task;

/// Rows per parallel block for column statistics and standardisation.
const ROW_BLOCK: usize = 1024;

/// A validated training problem with `x` as a candle tensor [rows, cols].
pub(crate) struct Problem<'a> {
    pub x: Tensor,
    pub rows: usize,
    pub cols: usize,
    pub outputs: usize,
    pub targets: Targets<'a>,
    /// (mean, std) per column when the data were z-scored.
    pub standardization: Option<(Vec<f32>, Vec<f32>)>,
}

/// The raw arguments of `train_probe`, bundled to keep signatures short.
#[derive(Clone)]
pub(crate) struct RawInput<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub labels: &'a [u32],
    pub targets: &'a [f32],
    pub task: Task,
}

impl<'a> RawInput<'a> {
    pub fn new(
        x: &'a [f32],
        (rows, cols): (usize, usize),
        labels: &'a [u32],
        targets: &'a [f32],
        task: Task,
    ) -> Self {
        Self {
            x,
            rows,
            cols,
            labels,
            targets,
            task,
        }
    }

    /// Checks every input and builds the tensor (z-scored when asked).
    pub fn into_problem(self, standardize: bool) -> Result<Problem<'a>, ProbeError> {
        check_shape(self.x, self.rows, self.cols)?;
        let targets = self.check_targets()?;
        let (x, standardization) = if standardize {
            let (mean, std) = checked_column_stats(self.x, self.cols)?;
            let z = standardize_rows(self.x, self.cols, &mean, &std);
            let t = Tensor::from_vec(z, (self.rows, self.cols), &Device::Cpu)?;
            (t, Some((mean, std)))
        } else {
            check_finite(self.x, self.cols)?;
            let t = Tensor::from_slice(self.x, (self.rows, self.cols), &Device::Cpu)?;
            (t, None)
        };
        Ok(Problem {
            x,
            rows: self.rows,
            cols: self.cols,
            outputs: self.task.outputs(),
            targets,
            standardization,
        })
    }

    fn check_targets(&self) -> Result<Targets<'a>, ProbeError> {
        checked_targets(self.task, self.labels, self.targets, self.rows)
    }
}

/// The labels (classification) or values (regression) of `rows` rows,
/// checked.
pub(crate) fn checked_targets<'a>(
    task: Task,
    labels: &'a [u32],
    targets: &'a [f32],
    rows: usize,
) -> Result<Targets<'a>, ProbeError> {
    match task {
        Task::Classification { num_classes } => {
            check_labels(labels, rows, num_classes)?;
            Ok(Targets::Classes(labels))
        }
        Task::Regression => {
            check_values(targets, rows)?;
            Ok(Targets::Values(targets))
        }
    }
}

/// Non-empty and `x.len() == rows * cols`.
pub(crate) fn check_shape(x: &[f32], rows: usize, cols: usize) -> Result<(), ProbeError> {
    if rows == 0 || cols == 0 {
        return Err(ProbeError::EmptyInput { rows, cols });
    }
    let expected = rows.saturating_mul(cols);
    if x.len() != expected {
        return Err(ProbeError::ShapeMismatch {
            len: x.len(),
            rows,
            cols,
            expected,
        });
    }
    Ok(())
}

fn check_labels(labels: &[u32], rows: usize, num_classes: usize) -> Result<(), ProbeError> {
    if num_classes == 0 {
        return Err(ProbeError::NoClasses);
    }
    if labels.len() != rows {
        return Err(ProbeError::LengthMismatch {
            what: "labels",
            got: labels.len(),
            rows,
        });
    }
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(row) => Err(ProbeError::LabelOutOfRange {
            row,
            label: labels[row],
            num_classes,
        }),
        None => Ok(()),
    }
}

fn check_values(targets: &[f32], rows: usize) -> Result<(), ProbeError> {
    if targets.len() != rows {
        return Err(ProbeError::LengthMismatch {
            what: "targets",
            got: targets.len(),
            rows,
        });
    }
    match targets.iter().position(|v| !v.is_finite()) {
        Some(row) => Err(ProbeError::NonFiniteTarget {
            row,
            value: targets[row],
        }),
        None => Ok(()),
    }
}

/// Finds the first NaN/inf (lowest index) so the message names a cell.
/// Blocks are checked in parallel with a branch-free (vectorisable) fold;
/// only a bad block is scanned again for the exact position.
pub(crate) fn check_finite(x: &[f32], cols: usize) -> Result<(), ProbeError> {
    let block = ROW_BLOCK * cols;
    let bad_block = x
        .par_chunks(block)
        .position_first(|b| !b.iter().fold(true, |ok, v| ok & v.is_finite()));
    let Some(b) = bad_block else {
        return Ok(());
    };
    let start = b * block;
    let offset = x[start..]
        .iter()
        .position(|v| !v.is_finite())
        .expect("the block holds a non-finite value");
    let i = start + offset;
    Err(ProbeError::NonFiniteInput {
        row: i / cols,
        col: i % cols,
        value: x[i],
    })
}

/// Per-column sum, min and max of a block of rows (first pass of the
/// column statistics; min == max detects constant columns exactly).
struct ColumnAcc {
    sum: Vec<f64>,
    min: Vec<f32>,
    max: Vec<f32>,
}

impl ColumnAcc {
    fn new(cols: usize) -> Self {
        Self {
            sum: vec![0.0; cols],
            min: vec![f32::INFINITY; cols],
            max: vec![f32::NEG_INFINITY; cols],
        }
    }

    fn add_block(mut self, block: &[f32], cols: usize) -> Self {
        for row in block.chunks_exact(cols) {
            // Zipped, not indexed, so that the loop vectorises.
            let extremes = self.min.iter_mut().zip(self.max.iter_mut());
            for ((&v, sum), (min, max)) in row.iter().zip(self.sum.iter_mut()).zip(extremes) {
                *sum += v as f64;
                *min = min.min(v);
                *max = max.max(v);
            }
        }
        self
    }

    fn merge(mut self, other: &ColumnAcc) -> Self {
        for j in 0..self.sum.len() {
            self.sum[j] += other.sum[j];
            self.min[j] = self.min[j].min(other.min[j]);
            self.max[j] = self.max[j].max(other.max[j]);
        }
        self
    }
}

/// Training mean and population std (ddof 0, like sklearn's StandardScaler)
/// of every column, two-pass in f64 for accuracy; blocks are combined in
/// order so the result is deterministic. A column whose values are all equal
/// gets std exactly 0 (rounding would otherwise give a tiny std and blow the
/// column up to noise).
///
/// Also [`check_finite`], one pass fewer than the two apart: a non-finite
/// value makes its column's f64 sum non-finite (a sum of finite f32 values
/// cannot overflow f64), and only then is the matrix searched for it.
pub(crate) fn checked_column_stats(
    x: &[f32],
    cols: usize,
) -> Result<(Vec<f32>, Vec<f32>), ProbeError> {
    let acc = first_pass(x, cols);
    if acc.sum.iter().any(|s| !s.is_finite()) {
        check_finite(x, cols)?;
    }
    Ok(stats_from_sums(x, cols, acc))
}

/// Sums, minima and maxima of every column, blocks combined in order.
fn first_pass(x: &[f32], cols: usize) -> ColumnAcc {
    let blocks: Vec<ColumnAcc> = x
        .par_chunks(ROW_BLOCK * cols)
        .map(|b| ColumnAcc::new(cols).add_block(b, cols))
        .collect();
    blocks
        .iter()
        .fold(ColumnAcc::new(cols), |acc, b| acc.merge(b))
}

/// The means and standard deviations from the first pass's sums (the
/// second pass sums the squared deviations).
fn stats_from_sums(x: &[f32], cols: usize, acc: ColumnAcc) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / cols;
    let mean: Vec<f64> = acc.sum.iter().map(|s| s / rows as f64).collect();
    let sq = squared_deviations(x, cols, &mean);
    let std = (0..cols)
        .map(|j| {
            if acc.min[j] == acc.max[j] {
                0.0
            } else {
                (sq[j] / rows as f64).sqrt() as f32
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

fn squared_deviations(x: &[f32], cols: usize, mean: &[f64]) -> Vec<f64> {
    let blocks: Vec<Vec<f64>> = x
        .par_chunks(ROW_BLOCK * cols)
        .map(|block| {
            let mut sq = vec![0.0f64; cols];
            for row in block.chunks_exact(cols) {
                for ((s, &v), &m) in sq.iter_mut().zip(row).zip(mean) {
                    let d = v as f64 - m;
                    *s += d * d;
                }
            }
            sq
        })
        .collect();
    let mut total = vec![0.0f64; cols];
    for b in &blocks {
        total.iter_mut().zip(b).for_each(|(t, v)| *t += v);
    }
    total
}

/// `(x - mean) / std` per column; a column with std 0 becomes all zeros.
pub(crate) fn standardize_rows(x: &[f32], cols: usize, mean: &[f32], std: &[f32]) -> Vec<f32> {
    map_standardized(x, cols, (mean, std), |v| v)
}

/// `map((x - mean) / std)` for every value (`standardize_rows` then `map`,
/// in one pass and without the f32 copy: the bf16 problem rounds here).
pub(crate) fn map_standardized<T: Copy + Default + Send>(
    x: &[f32],
    cols: usize,
    (mean, std): (&[f32], &[f32]),
    map: impl Fn(f32) -> T + Sync,
) -> Vec<T> {
    let inv: Vec<f32> = std
        .iter()
        .map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 })
        .collect();
    let mut out = vec![T::default(); x.len()];
    out.par_chunks_mut(ROW_BLOCK * cols)
        .zip(x.par_chunks(ROW_BLOCK * cols))
        .for_each(|(o, i)| {
            for (orow, irow) in o.chunks_exact_mut(cols).zip(i.chunks_exact(cols)) {
                // Zipped, not indexed: no bounds checks, so the loop
                // vectorises (indexed, it ran one value at a time).
                let scales = mean.iter().zip(&inv);
                for ((out, &v), (&m, &inv)) in orow.iter_mut().zip(irow).zip(scales) {
                    *out = map((v - m) * inv);
                }
            }
        });
    out
}

/// Columns `range` of the row-major matrix `x` ([rows, cols]), copied.
pub(crate) fn column_range(x: &[f32], cols: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    x.chunks_exact(cols)
        .flat_map(|row| &row[range.clone()])
        .copied()
        .collect()
}

/// Calls `f` with the f32 values of a contiguous CPU tensor, without a copy.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, ProbeError> {
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("probe: expected a contiguous tensor".into()))?;
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(&cpu.as_slice::<f32>()?[start..end])),
        _ => Err(candle_core::Error::Msg("probe: expected a CPU tensor".into()).into()),
    }
}

/// `W^T` as a contiguous [cols, rows] tensor from row-major `W` [rows, cols]:
/// gemm runs `X @ W^T` about 20% faster with a contiguous right-hand side
/// than with a strided transpose view.
pub(crate) fn transposed_tensor(w: &[f32], rows: usize, cols: usize) -> Result<Tensor, ProbeError> {
    let mut t = vec![0.0f32; w.len()];
    for (r, row) in w.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    Ok(Tensor::from_vec(t, (cols, rows), &Device::Cpu)?)
}
