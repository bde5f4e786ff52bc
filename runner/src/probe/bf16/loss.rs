//! The loss and its score gradient on class-major scores.
//!
//! The tile product gives the scores transposed (`scores^T`, one line per
//! class, one lane per batch row), so the softmax runs along those lines:
//! every pass is a loop over contiguous rows that vectorises, with no
//! transposition to a row-major copy and back. Each row's maximum and sum
//! still run over the classes in order, and every element goes through the
//! same operations as in `objective::ce_chunk_grad`, so the gradient is the
//! same bits as the row-major code's. The gradient is then rounded straight
//! into the tiled bf16 operand of the weight-gradient product.

use super::super::objective::Targets;
use super::super::softmax_exp::exp_shifted_summed;
use super::kernel::{lhs_index, TILE_DEPTH};
use super::layout::round_into;

/// Per-row buffers reused across steps (maxima, then sums and their
/// inverses).
#[derive(Default)]
pub(super) struct RowScratch {
    max: Vec<f32>,
    sum: Vec<f32>,
}

/// Class-major scores `g` (line `c` = class `c`, `stride` apart, the first
/// `n` lanes used) plus `bias` become the gradient of the mean loss with
/// respect to the scores; `gb` gets its sum over rows (the bias gradient).
/// Returns the mean loss, or 0 without `want_loss` (the cross-entropy's
/// logarithms are then skipped: the solver reports only the last epoch's).
pub(super) fn loss_grad(
    g: &mut [f32],
    (stride, n): (usize, usize),
    bias: &[f32],
    targets: Targets<'_>,
    gb: &mut [f32],
    scratch: &mut RowScratch,
    want_loss: bool,
) -> f64 {
    // AVX2 where the build does not target the host already (AVX-512
    // gives nothing more here: the compiler keeps to 256-bit vectors).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been checked to support AVX2.
        return unsafe { loss_grad_avx2(g, (stride, n), bias, targets, gb, scratch, want_loss) };
    }
    loss_grad_plain(g, (stride, n), bias, targets, gb, scratch, want_loss)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn loss_grad_avx2(
    g: &mut [f32],
    shape: (usize, usize),
    bias: &[f32],
    targets: Targets<'_>,
    gb: &mut [f32],
    scratch: &mut RowScratch,
    want_loss: bool,
) -> f64 {
    loss_grad_plain(g, shape, bias, targets, gb, scratch, want_loss)
}

#[inline(always)]
fn loss_grad_plain(
    g: &mut [f32],
    (stride, n): (usize, usize),
    bias: &[f32],
    targets: Targets<'_>,
    gb: &mut [f32],
    scratch: &mut RowScratch,
    want_loss: bool,
) -> f64 {
    let k = bias.len();
    let loss = match targets {
        Targets::Classes(labels) => {
            cross_entropy_grad(g, (stride, n, k), bias, labels, scratch, want_loss)
        }
        // One output: the class-major line is the row-major column.
        Targets::Values(_) => {
            g[..n].iter_mut().for_each(|v| *v += bias[0]);
            targets.loss_grad_in_place(&mut g[..n], 1)
        }
    };
    line_sums(g, (stride, n), &mut gb[..k]);
    loss
}

/// `out[c]` = the sum of line `c`'s first `n` lanes, added in lane order
/// (as `objective::column_sums` adds the rows).
#[inline(always)]
fn line_sums(g: &[f32], shape: (usize, usize), out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512 F was just detected.
        unsafe { simd::line_sums_avx512(g, shape, out) };
        return;
    }
    line_sums_scalar(g, shape, out)
}

/// [`line_sums`] eight lines at a time, so that eight independent chains
/// of additions overlap.
fn line_sums_scalar(g: &[f32], (stride, n): (usize, usize), out: &mut [f32]) {
    const LINES: usize = 8;
    for (block, sums) in out.chunks_mut(LINES).enumerate() {
        let first = block * LINES * stride;
        let mut acc = [0.0f32; LINES];
        for r in 0..n {
            for (j, a) in acc.iter_mut().enumerate().take(sums.len()) {
                *a += g[first + j * stride + r];
            }
        }
        sums.copy_from_slice(&acc[..sums.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::super::transpose::{transpose_16x16, LANES};

    /// `line_sums` sixteen lines at a time, each in its own lane: every
    /// 16 x 16 block of (line, row) is transposed in registers, then the
    /// rows are added one after the other, so each lane adds its line's
    /// values in row order (the same bits as one scalar chain per line,
    /// without the scalar code's limit of two additions per cycle). A
    /// block reads all sixteen lines (the tiled scores have them, past the
    /// classes) and sixteen lanes of each (within `stride`); where `g`
    /// does not hold them, the scalar code adds the rest.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn line_sums_avx512(g: &[f32], (stride, n): (usize, usize), out: &mut [f32]) {
        let lines_held = g.len() / stride.max(1);
        let mut done = 0;
        if n.div_ceil(LANES) * LANES <= stride {
            for (block, sums) in out.chunks_mut(LANES).enumerate() {
                if (block + 1) * LANES > lines_held {
                    break;
                }
                let first = block * LANES * stride;
                let mut acc = _mm512_setzero_ps();
                for r0 in (0..n).step_by(LANES) {
                    let mut rows = [_mm512_setzero_si512(); LANES];
                    for (line, row) in rows.iter_mut().enumerate() {
                        // In bounds: the block's lines are held (checked
                        // above) and r0 + 16 <= stride.
                        let at = g.as_ptr().add(first + line * stride + r0);
                        *row = _mm512_castps_si512(_mm512_loadu_ps(at));
                    }
                    transpose_16x16(&mut rows);
                    for row in &rows[..LANES.min(n - r0)] {
                        acc = _mm512_add_ps(acc, _mm512_castsi512_ps(*row));
                    }
                }
                let mut all = [0.0f32; LANES];
                _mm512_storeu_ps(all.as_mut_ptr(), acc);
                sums.copy_from_slice(&all[..sums.len()]);
                done += sums.len();
            }
        }
        if done < out.len() {
            super::line_sums_scalar(&g[done * stride..], (stride, n), &mut out[done..]);
        }
    }
}

/// Softmax cross-entropy over the `k` class lines plus their bias; returns
/// the mean row loss, summed in the order `ce_chunk_grad` uses. Three
/// passes over the lines (bias and maxima; shifted exponentials and their
/// sums; scaling and the label's subtraction), each element going through
/// the same operations as in the row-major code.
#[inline(always)]
fn cross_entropy_grad(
    g: &mut [f32],
    (stride, n, k): (usize, usize, usize),
    bias: &[f32],
    labels: &[u32],
    scratch: &mut RowScratch,
    want_loss: bool,
) -> f64 {
    let line_of = |c: usize| c * stride..c * stride + n;
    let max = &mut scratch.max;
    max.clear();
    max.resize(n, f32::NEG_INFINITY);
    for (c, &b) in bias.iter().enumerate().take(k) {
        for (v, m) in g[line_of(c)].iter_mut().zip(max.iter_mut()) {
            *v += b;
            *m = m.max(*v);
        }
    }
    let mut loss = 0.0f64;
    if want_loss {
        for (r, &y) in labels[..n].iter().enumerate() {
            loss -= (g[y as usize * stride + r] - max[r]) as f64;
        }
    }
    let sum = &mut scratch.sum;
    sum.clear();
    sum.resize(n, 0.0);
    for c in 0..k {
        exp_shifted_summed(&mut g[line_of(c)], max, sum);
    }
    let scale = 1.0 / n as f32;
    if want_loss {
        loss = sum.iter().fold(loss, |acc, &s| acc + (s as f64).ln());
    }
    sum.iter_mut().for_each(|s| *s = scale / *s);
    for c in 0..k {
        // `v - 0.0` is `v` (also for -0.0), so the label's subtraction can
        // run on every lane and the loop stays branch-free.
        for ((v, &inv), &y) in g[line_of(c)].iter_mut().zip(sum.iter()).zip(&labels[..n]) {
            let label = if y as usize == c { scale } else { 0.0 };
            *v = *v * inv - label;
        }
    }
    loss / n as f64
}

/// Lines `0..k` of the class-major gradient `g` (first `n` lanes of each
/// `stride`) rounded into the tiled left-hand side `dz_t` of `rows32`
/// columns; lanes past `n` become zeros (the padded batch rows must add
/// nothing to the weight gradient).
pub(super) fn round_gradient_into_tiles(
    g: &[f32],
    (stride, n, k): (usize, usize, usize),
    dz_t: &mut [u16],
    rows32: usize,
) {
    for c in 0..k {
        let line = &g[c * stride..c * stride + n];
        for first in (0..rows32).step_by(TILE_DEPTH) {
            let at = lhs_index(rows32, c, first);
            let out = &mut dz_t[at..at + TILE_DEPTH];
            let values = line.get(first..(first + TILE_DEPTH).min(n)).unwrap_or(&[]);
            round_into(values, &mut out[..values.len()]);
            out[values.len()..].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::objective::column_sums;
    use super::super::layout::f32_to_bf16;
    use super::*;

    /// Row-major scores for `rows` rows and `k` classes, varied enough
    /// that maxima, sums and labels differ row to row.
    fn scores(rows: usize, k: usize) -> Vec<f32> {
        (0..rows * k)
            .map(|i| ((i * 7919 % 1013) as f32 / 97.0 - 5.0) * if i % 3 == 0 { 1.5 } else { 0.7 })
            .collect()
    }

    /// Row-major scores of `k` classes as class lines `stride` apart.
    fn class_major(z: &[f32], k: usize, stride: usize) -> Vec<f32> {
        let mut lines = vec![0.0f32; k * stride];
        for (r, row) in z.chunks_exact(k).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                lines[c * stride + r] = v;
            }
        }
        lines
    }

    #[test]
    fn line_sums_add_each_line_in_row_order_on_every_path() {
        // Magnitudes from 1e-4 to 1e4, so that any other order of the
        // additions would change the sums' last bits.
        let value = |i: usize| ((i * 7919 % 1013) as f32 - 506.0) * 10f32.powi((i % 9) as i32 - 4);
        for (lines, k, n) in [
            (48, 42, 128usize),
            (48, 42, 75),
            (48, 48, 9),
            (32, 17, 1),
            (45, 45, 33),
        ] {
            let stride = n.div_ceil(16) * 16;
            let g: Vec<f32> = (0..lines * stride).map(value).collect();
            let want: Vec<f32> = (0..k)
                .map(|c| {
                    g[c * stride..c * stride + n]
                        .iter()
                        .fold(0.0, |a, &v| a + v)
                })
                .collect();
            let (mut got, mut scalar) = (vec![0.0; k], vec![0.0; k]);
            line_sums(&g, (stride, n), &mut got);
            line_sums_scalar(&g, (stride, n), &mut scalar);
            assert_eq!(got, want, "{lines} lines, {k} sums, {n} rows");
            assert_eq!(scalar, want, "{lines} lines, {k} sums, {n} rows");
        }
    }

    #[test]
    fn class_major_gradient_is_the_row_major_one_bit_for_bit() {
        for (n, stride) in [(128, 128), (75, 80), (9, 16)] {
            let k = 45;
            let z = scores(n, k);
            let bias: Vec<f32> = (0..k).map(|c| c as f32 * 0.01 - 0.2).collect();
            let labels: Vec<u32> = (0..n).map(|r| (r * 31 % k) as u32).collect();
            // The row-major reference: scores plus bias, objective's code.
            let mut want: Vec<f32> = z
                .chunks_exact(k)
                .flat_map(|row| row.iter().zip(&bias).map(|(v, b)| v + b))
                .collect();
            let targets = Targets::Classes(&labels);
            let want_loss = targets.loss_grad_in_place(&mut want, k);
            let mut want_gb = vec![0.0; k];
            column_sums(&want, k, &mut want_gb);
            let mut g = class_major(&z, k, stride);
            let mut gb = vec![0.0; k];
            let loss = loss_grad(
                &mut g,
                (stride, n),
                &bias,
                targets,
                &mut gb,
                &mut RowScratch::default(),
                true,
            );
            for r in 0..n {
                for c in 0..k {
                    assert_eq!(
                        g[c * stride + r].to_bits(),
                        want[r * k + c].to_bits(),
                        "row {r} class {c} of {n} rows"
                    );
                }
            }
            assert_eq!(gb, want_gb);
            assert!(
                (loss - want_loss).abs() <= 1e-12 * want_loss.abs(),
                "{loss} {want_loss}"
            );
        }
    }

    #[test]
    fn skipping_the_loss_leaves_the_gradient_unchanged() {
        let (n, k, stride) = (50, 7, 64);
        let z = scores(n, k);
        let labels: Vec<u32> = (0..n).map(|r| (r * 3 % k) as u32).collect();
        let lines = class_major(&z, k, stride);
        let run = |want_loss| {
            let mut g = lines.clone();
            let mut gb = vec![0.0; k];
            let bias = vec![0.1; k];
            let targets = Targets::Classes(&labels);
            let mut scratch = RowScratch::default();
            let loss = loss_grad(
                &mut g,
                (stride, n),
                &bias,
                targets,
                &mut gb,
                &mut scratch,
                want_loss,
            );
            (loss, g, gb)
        };
        let (with_loss, g, gb) = run(true);
        let (without, g_skipped, gb_skipped) = run(false);
        assert!(with_loss > 0.0 && without == 0.0, "{with_loss} {without}");
        assert_eq!(g, g_skipped);
        assert_eq!(gb, gb_skipped);
    }

    #[test]
    fn regression_lines_are_the_squared_error_gradient() {
        let n = 20;
        let mut g: Vec<f32> = (0..32).map(|i| i as f32 * 0.5).collect();
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 + 1.0).collect();
        let mut gb = [0.0];
        let loss = loss_grad(
            &mut g,
            (32, n),
            &[0.5],
            Targets::Values(&values),
            &mut gb,
            &mut RowScratch::default(),
            true,
        );
        let mut want_loss = 0.0;
        for r in 0..n {
            let e = r as f32 * 0.5 + 0.5 - values[r];
            want_loss += (e as f64) * (e as f64);
            assert_eq!(g[r], 2.0 * e * (1.0 / n as f32), "row {r}");
        }
        assert!((loss - want_loss / n as f64).abs() < 1e-12);
        assert_eq!(gb[0], g[..n].iter().sum::<f32>());
    }

    #[test]
    fn rounded_gradient_fills_whole_tile_rows_with_zeros_past_the_batch() {
        let (k, n, stride, rows32) = (3, 40, 48, 64);
        let g: Vec<f32> = (0..k * stride).map(|i| i as f32 + 0.5).collect();
        let mut dz_t = vec![u16::MAX; 16 * rows32];
        round_gradient_into_tiles(&g, (stride, n, k), &mut dz_t, rows32);
        for c in 0..k {
            for r in 0..rows32 {
                let want = if r < n {
                    f32_to_bf16(g[c * stride + r])
                } else {
                    0
                };
                assert_eq!(dz_t[lhs_index(rows32, c, r)], want, "class {c} row {r}");
            }
        }
    }
}
