//! Losses, their gradients with respect to the scores, and the penalties.
//!
//! The linear layer is `z = x W^T + b`; everything here works on the score
//! matrix `z` ([rows, outputs], row-major) so both solvers share one
//! implementation of the loss and the gradient check tests exactly the code
//! that trains.

use rayon::prelude::*;

use super::softmax_exp::exp_in_place;

/// Rows per parallel chunk; also the threshold below which loss work stays
/// on the calling thread (a mini-batch of 128 rows is not worth a fork).
const ROW_CHUNK: usize = 512;

/// Supervision of the rows of a problem.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Targets<'a> {
    /// Class index per row (softmax cross-entropy).
    Classes(&'a [u32]),
    /// Real value per row (squared error, one output).
    Values(&'a [f32]),
}

impl<'a> Targets<'a> {
    /// The targets of rows `start..start + len`.
    pub fn slice(&self, start: usize, len: usize) -> Targets<'a> {
        match *self {
            Targets::Classes(c) => Targets::Classes(&c[start..start + len]),
            Targets::Values(v) => Targets::Values(&v[start..start + len]),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// Mean loss of the scores `z` ([rows, k]); `z` is overwritten with the
    /// gradient of that mean loss with respect to `z`.
    pub fn loss_grad_in_place(&self, z: &mut [f32], k: usize) -> f64 {
        let n = self.len();
        let scale = 1.0 / n as f32;
        let total = for_row_chunks(z, k, |first, chunk| match *self {
            Targets::Classes(c) => ce_chunk_grad(chunk, k, &c[first..], scale),
            Targets::Values(v) => mse_chunk_grad(chunk, &v[first..], scale),
        });
        total / n as f64
    }

    /// Mean loss of the scores `z` ([rows, k]) without the gradient.
    pub fn loss(&self, z: &[f32], k: usize) -> f64 {
        let n = self.len();
        let sums: Vec<f64> = if n <= ROW_CHUNK {
            vec![self.chunk_loss(z, k, 0)]
        } else {
            z.par_chunks(ROW_CHUNK * k)
                .enumerate()
                .map(|(i, chunk)| self.chunk_loss(chunk, k, i * ROW_CHUNK))
                .collect()
        };
        sums.iter().sum::<f64>() / n as f64
    }

    fn chunk_loss(&self, z: &[f32], k: usize, first: usize) -> f64 {
        match *self {
            Targets::Classes(c) => z
                .chunks_exact(k)
                .zip(&c[first..])
                .map(|(row, &y)| log_sum_exp(row) - row[y as usize] as f64)
                .sum(),
            Targets::Values(v) => z
                .iter()
                .zip(&v[first..])
                .map(|(&p, &t)| {
                    let e = p as f64 - t as f64;
                    e * e
                })
                .sum(),
        }
    }
}

/// Runs `f(first_row, rows_chunk)` over fixed row chunks (in parallel when
/// there are several) and sums the returned losses in chunk order, so the
/// result does not depend on thread scheduling.
fn for_row_chunks<F>(z: &mut [f32], k: usize, f: F) -> f64
where
    F: Fn(usize, &mut [f32]) -> f64 + Sync,
{
    if z.len() <= ROW_CHUNK * k {
        return f(0, z);
    }
    let sums: Vec<f64> = z
        .par_chunks_mut(ROW_CHUNK * k)
        .enumerate()
        .map(|(i, chunk)| f(i * ROW_CHUNK, chunk))
        .collect();
    sums.iter().sum()
}

/// log(sum(exp(row))) computed stably in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln()
}

/// Cross-entropy of each row; rows become `(softmax - onehot) * scale`.
fn ce_chunk_grad(z: &mut [f32], k: usize, labels: &[u32], scale: f32) -> f64 {
    // Every row shifted by its maximum first, so that one vectorised
    // exponential runs over the whole chunk.
    let mut loss = 0.0f64;
    let mut blocks = z.chunks_exact_mut(k * ROWS_AT_ONCE);
    for (b, block) in blocks.by_ref().enumerate() {
        let max = lane_max(block, k);
        for (j, row) in block.chunks_exact_mut(k).enumerate() {
            row.iter_mut().for_each(|v| *v -= max[j]);
            loss -= row[labels[b * ROWS_AT_ONCE + j] as usize] as f64;
        }
    }
    let done = (z.len() / k) / ROWS_AT_ONCE * ROWS_AT_ONCE;
    for (row, &y) in z[done * k..].chunks_exact_mut(k).zip(&labels[done..]) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|v| *v -= max);
        loss -= row[y as usize] as f64;
    }
    exp_in_place(z);
    let mut sums = vec![0.0f32; z.len() / k];
    for (block, out) in z
        .chunks_exact(k * ROWS_AT_ONCE)
        .zip(sums.chunks_exact_mut(ROWS_AT_ONCE))
    {
        out.copy_from_slice(&lane_sum(block, k));
    }
    for (row, sum) in z[done * k..].chunks_exact(k).zip(&mut sums[done..]) {
        *sum = row.iter().sum();
    }
    for ((row, &y), &sum) in z.chunks_exact_mut(k).zip(labels).zip(&sums) {
        loss += (sum as f64).ln();
        let inv = scale / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        row[y as usize] -= scale;
    }
    loss
}

/// Rows whose maxima and sums are taken side by side: each row's own
/// reduction is still the left-to-right loop (the same bits), but eight
/// independent chains hide the latency that one 45-value chain exposes.
const ROWS_AT_ONCE: usize = 8;

/// The maximum of each of the 8 rows (k values each) of `block`.
#[inline]
fn lane_max(block: &[f32], k: usize) -> [f32; ROWS_AT_ONCE] {
    let mut max = [f32::NEG_INFINITY; ROWS_AT_ONCE];
    for c in 0..k {
        for (j, m) in max.iter_mut().enumerate() {
            *m = m.max(block[j * k + c]);
        }
    }
    max
}

/// The left-to-right sum of each of the 8 rows (k values each) of `block`.
#[inline]
fn lane_sum(block: &[f32], k: usize) -> [f32; ROWS_AT_ONCE] {
    let mut sum = [0.0f32; ROWS_AT_ONCE];
    for c in 0..k {
        for (j, s) in sum.iter_mut().enumerate() {
            *s += block[j * k + c];
        }
    }
    sum
}

/// Squared error of each prediction; predictions become `2 (p - t) * scale`.
fn mse_chunk_grad(z: &mut [f32], targets: &[f32], scale: f32) -> f64 {
    let mut loss = 0.0f64;
    for (p, &t) in z.iter_mut().zip(targets) {
        let e = *p - t;
        loss += (e as f64) * (e as f64);
        *p = 2.0 * e * scale;
    }
    loss
}

/// The paper's penalty `l1 * sum|W| + l2 * ||W||_F` (unsquared norm).
pub(crate) fn paper_penalty(w: &[f32], l1: f32, l2: f32) -> f64 {
    let abs: f64 = w.iter().map(|&v| (v as f64).abs()).sum();
    let sq: f64 = w.iter().map(|&v| (v as f64) * (v as f64)).sum();
    l1 as f64 * abs + l2 as f64 * sq.sqrt()
}

/// `l2 / ||W||`, the factor of the norm's gradient `l2 W / ||W||`; zero at
/// `W = 0`, where torch's norm backward also gives zero.
pub(crate) fn l2_over_norm(l2: f32, sum_sq: f64) -> f32 {
    if sum_sq > 0.0 {
        (l2 as f64 / sum_sq.sqrt()) as f32
    } else {
        0.0
    }
}

/// Derivative of the paper's penalty for one weight: `l1 sign(w)` (with
/// sign(0) = 0, torch's subgradient of |w|) plus `(l2/||W||) w`.
#[inline]
pub(crate) fn paper_penalty_grad(w: f32, l1: f32, l2_over_norm: f32) -> f32 {
    // Branch-free so the Adam update loop vectorises.
    let sign = (w > 0.0) as i32 as f32 - (w < 0.0) as i32 as f32;
    l1 * sign + l2_over_norm * w
}

/// Sum of squares in f64 (sequential, hence deterministic).
pub(crate) fn sum_squares(w: &[f32]) -> f64 {
    w.iter().map(|&v| (v as f64) * (v as f64)).sum()
}

/// Sum of absolute values in f64.
pub(crate) fn sum_abs(w: &[f32]) -> f64 {
    w.iter().map(|&v| (v as f64).abs()).sum()
}

/// Column sums of a [rows, k] matrix: the bias gradient from score gradients.
pub(crate) fn column_sums(dz: &[f32], k: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for row in dz.chunks_exact(k) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}
