//! The hot loop of a greedy step: for every candidate column, the summed
//! log posterior of the true class over all rows once that column joins
//! the selected ones.
//!
//! For row `i`, class `c` and candidate `j` (see `model.rs` for the terms):
//!
//! ```text
//! r    = x[i,j] - mean_c[j] - sum_t z_c[i,t] * w_c[t,j]      (one GEMM per class)
//! a_c  = base_c[i] - 0.5 ln cv_c[j] - 0.5 r^2 / cv_c[j]
//! gain = a_{y_i} - logsumexp_c a_c
//! ```
//!
//! Work is cut into tiles of `ROWS` rows by `COLS` columns; the per-class
//! `a` values of a tile live in one buffer so the logsumexp takes its exact
//! maximum first. Columns are split across rayon tasks, each summing its
//! own columns over all rows in a fixed order, so the result does not
//! depend on the thread count.

use rayon::prelude::*;

use crate::model::ClassModel;

/// Rows per tile. The logsumexp of a tile multiplies up to `ROWS` sums
/// (each in `[1, classes]`) in f64 before one logarithm, which stays finite
/// for fewer than 2^32 classes.
const ROWS: usize = 64;
/// Columns per tile (and per rayon task).
const COLS: usize = 128;

/// What the kernel reads: the standardised rows and the class models after
/// `k` selected columns.
pub(crate) struct Step<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub labels: &'a [u32],
    pub classes: &'a [ClassModel],
    pub k: usize,
    pub budget: usize,
}

/// Sum over rows of `log p(true class | selected + j)` for every column `j`.
pub(crate) fn candidate_objectives(step: &Step<'_>) -> Vec<f64> {
    let blocks: Vec<usize> = (0..step.cols).step_by(COLS).collect();
    let parts: Vec<Vec<f64>> = blocks
        .par_iter()
        .map(|&j0| {
            let width = COLS.min(step.cols - j0);
            let mut scratch = Scratch::new(step.classes.len(), width);
            let mut acc = vec![0.0f64; width];
            for r0 in (0..step.rows).step_by(ROWS) {
                let height = ROWS.min(step.rows - r0);
                tile(step, r0, height, j0, width, &mut scratch, &mut acc);
            }
            acc
        })
        .collect();
    parts.concat()
}

struct Scratch {
    /// `classes` blocks of `ROWS x width`: residuals, then `a` values.
    a: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
    prod: Vec<f64>,
}

impl Scratch {
    fn new(classes: usize, width: usize) -> Self {
        Scratch {
            a: vec![0.0; classes * ROWS * width],
            max: vec![0.0; ROWS * width],
            sum: vec![0.0; ROWS * width],
            prod: vec![1.0; width],
        }
    }
}

/// One tile, with the element-wise part compiled for AVX2 + FMA when the
/// CPU has them (the generic build targets baseline x86-64).
fn tile(
    step: &Step<'_>,
    r0: usize,
    height: usize,
    j0: usize,
    width: usize,
    scratch: &mut Scratch,
    acc: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function enables.
            unsafe { tile_avx2(step, r0, height, j0, width, scratch, acc) };
            return;
        }
    }
    tile_body::<false>(step, r0, height, j0, width, scratch, acc);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    step: &Step<'_>,
    r0: usize,
    height: usize,
    j0: usize,
    width: usize,
    scratch: &mut Scratch,
    acc: &mut [f64],
) {
    tile_body::<true>(step, r0, height, j0, width, scratch, acc);
}

/// `FMA`: use fused multiply-adds (only where the CPU has them: without,
/// `mul_add` is a slow library call).
#[inline(always)]
fn tile_body<const FMA: bool>(
    step: &Step<'_>,
    r0: usize,
    height: usize,
    j0: usize,
    width: usize,
    scratch: &mut Scratch,
    acc: &mut [f64],
) {
    let block = ROWS * width;
    let cells = height * width;
    for (c, model) in step.classes.iter().enumerate() {
        let out = &mut scratch.a[c * block..c * block + cells];
        if step.k > 0 {
            // out = Z_c[rows, :k] * W_c[:k, cols]
            // SAFETY: every pointer and stride stays inside its buffer:
            // `out` is height x width (row stride width), Z_c rows r0.. of
            // stride `budget` with k <= budget columns, W_c rows 0..k of
            // stride `cols` from column j0 with j0 + width <= cols.
            unsafe {
                gemm::gemm(
                    height,
                    width,
                    step.k,
                    out.as_mut_ptr(),
                    1,
                    width as isize,
                    false,
                    model.z[r0 * step.budget..].as_ptr(),
                    1,
                    step.budget as isize,
                    model.w[j0..].as_ptr(),
                    1,
                    step.cols as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        } else {
            out.fill(0.0);
        }
        let mean = &model.mean[j0..j0 + width];
        let half_log = &model.half_log_cv[j0..j0 + width];
        let inv = &model.inv_cv[j0..j0 + width];
        for (r, row) in out.chunks_exact_mut(width).enumerate() {
            let base = model.base[r0 + r];
            let x = &step.x[(r0 + r) * step.cols + j0..][..width];
            let max = &mut scratch.max[r * width..(r + 1) * width];
            let terms = row.iter_mut().zip(x).zip(mean).zip(half_log).zip(inv);
            for ((((o, &v), &m), &h), &iv) in terms {
                let resid = v - m - *o;
                *o = base - h - 0.5 * resid * resid * iv;
            }
            if c == 0 {
                max.copy_from_slice(row);
            } else {
                for (mx, &a) in max.iter_mut().zip(row.iter()) {
                    *mx = mx.max(a);
                }
            }
        }
    }
    let sum = &mut scratch.sum[..cells];
    sum.fill(0.0);
    for c in 0..step.classes.len() {
        let a = &scratch.a[c * block..c * block + cells];
        for ((s, &v), &m) in sum.iter_mut().zip(a).zip(&scratch.max[..cells]) {
            *s += exp_nonpositive::<FMA>(v - m);
        }
    }
    let prod = &mut scratch.prod;
    prod.fill(1.0);
    for r in 0..height {
        let label = step.labels[r0 + r] as usize;
        let truth = &scratch.a[label * block + r * width..][..width];
        let max = &scratch.max[r * width..(r + 1) * width];
        let sum = &scratch.sum[r * width..(r + 1) * width];
        for j in 0..width {
            acc[j] += f64::from(truth[j] - max[j]);
            prod[j] *= f64::from(sum[j]);
        }
    }
    for (a, p) in acc.iter_mut().zip(prod.iter()) {
        *a -= p.ln();
    }
}

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `e^x` for `x <= 0`, to about 2e-7 relative, in branch-free arithmetic
/// that vectorises: `x = n ln 2 + r`, a degree-6 polynomial for `e^r`,
/// and `2^n` put straight into the exponent bits. Below -80 the result is
/// about 1e-35 instead of smaller, which no sum here can notice.
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let fma = mul_add::<FMA>;
    let x = x.max(-80.0);
    let t = fma(x, std::f32::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = fma(n, -LN2_LO, fma(n, -LN2_HI, x));
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = fma(p, r, c);
    }
    let shift = t.to_bits().wrapping_sub(MAGIC.to_bits()) << 23;
    f32::from_bits(p.to_bits().wrapping_add(shift))
}

#[cfg(test)]
mod tests {
    use super::exp_nonpositive;

    #[test]
    fn fast_exp_matches_the_library_exp() {
        let mut x = 0.0f32;
        while x > -80.0 {
            let exact = f64::from(x).exp();
            for fast in [exp_nonpositive::<false>(x), exp_nonpositive::<true>(x)] {
                let err = ((f64::from(fast) - exact) / exact).abs();
                assert!(err < 1e-6, "exp({x}) = {exact}, got {fast}");
            }
            x -= 0.013;
        }
        assert!(exp_nonpositive::<false>(-1000.0) < 1e-30);
        assert_eq!(exp_nonpositive::<true>(0.0), 1.0);
    }
}
