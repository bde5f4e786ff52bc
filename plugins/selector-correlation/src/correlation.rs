//! Pearson correlation of every pair of columns through one matrix product.
//!
//! Each column is centred and scaled to unit length in f64 (two passes, so a
//! large mean cannot cancel a small spread), stored as f32, and the
//! correlations are the entries of `Zᵀ Z`. The product runs one strip of
//! rows at a time over the upper triangle only (the matrix is symmetric),
//! through the `gemm` crate's f32 kernels: about half the work of a full
//! product, and no `cols x cols` square matrix is ever held.
//!
//! ## Near-constant columns
//! A column counts as constant when its standard deviation is at most
//! [`NEAR_CONSTANT_REL`] times `|mean| + s`, where `s` is the median over all
//! columns of the root mean square `sqrt(mean(x²))`. Such a column correlates
//! 0 with everything (distance 1), like NumPy's NaN for an exactly constant
//! column after `nan -> 0`.
//!
//! Why this rule: the activations are f32 results of sums of many terms of
//! the layer's typical magnitude `s`, so each carries an absolute rounding
//! error of order `1e-7 * s` and more (`f32::EPSILON` is 1.2e-7). A column
//! whose whole spread is below `1e-6 * s` varies only at that noise level,
//! and one whose spread is below `1e-6 * |mean|` varies only in its last
//! representable digits; a correlation computed from either measures
//! rounding, not signal. A dead unit with values 1e-32..1e-7 (a GELU tail) in
//! a model whose typical activation is O(0.1..1) is therefore constant, even
//! though its correlation in exact arithmetic is well defined. Measuring
//! against the median column (not a fixed absolute floor) keeps the rule
//! independent of the units of the data: scaling every activation by 1000
//! flags the same columns.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;
use sieve_core::MatrixView;

use crate::condensed::Condensed;

/// Relative spread below which a column is treated as constant (see the
/// module documentation for why 1e-6).
pub const NEAR_CONSTANT_REL: f64 = 1e-6;

/// Rows per strip of the product. Large enough for the GEMM kernels to run
/// at full speed (measured: 256 is as fast per core as 2688), small enough
/// that the triangle saves most of the lower half.
const BLOCK: usize = 256;

/// Columns per parallel task of the statistics and the standardisation:
/// one even share per thread (the product's strips, 1,152 columns in 4.5
/// of them, would not spread evenly), as wide as can be, since the tasks
/// read each row's part of their columns and wide parts stream fastest.
fn stats_block(cols: usize) -> usize {
    cols.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Per-column statistics, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStats {
    pub mean: Vec<f64>,
    /// Population standard deviation (divides by the row count).
    pub std: Vec<f64>,
    /// Root mean square, `sqrt(mean(x²))`.
    pub rms: Vec<f64>,
}

/// Mean, standard deviation and RMS of every column, two-pass.
pub fn column_stats(x: &MatrixView<'_>) -> ColumnStats {
    let parts: Vec<ColumnStats> = column_blocks(x.cols(), stats_block(x.cols()))
        .into_par_iter()
        .map(|(c0, c1)| block_stats(x, c0, c1))
        .collect();
    let mut all = ColumnStats {
        mean: Vec::with_capacity(x.cols()),
        std: Vec::with_capacity(x.cols()),
        rms: Vec::with_capacity(x.cols()),
    };
    for part in parts {
        all.mean.extend(part.mean);
        all.std.extend(part.std);
        all.rms.extend(part.rms);
    }
    all
}

/// Statistics of columns `c0..c1`, reading the rows' contiguous segments.
fn block_stats(x: &MatrixView<'_>, c0: usize, c1: usize) -> ColumnStats {
    let rows = x.rows().max(1) as f64;
    let mut sum = vec![0.0f64; c1 - c0];
    for r in 0..x.rows() {
        for (s, &v) in sum.iter_mut().zip(&x.row(r)[c0..c1]) {
            *s += f64::from(v);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / rows).collect();
    let mut dev2 = vec![0.0f64; c1 - c0];
    let mut sq = vec![0.0f64; c1 - c0];
    for r in 0..x.rows() {
        // Zipped, not indexed: no bounds checks, so the loop vectorises
        // (each lane one column, its rows still added in order).
        let sums = dev2.iter_mut().zip(sq.iter_mut());
        for ((&v, &m), (d, s)) in x.row(r)[c0..c1].iter().zip(&mean).zip(sums) {
            let v = f64::from(v);
            *d += (v - m) * (v - m);
            *s += v * v;
        }
    }
    ColumnStats {
        std: dev2.iter().map(|d| (d / rows).sqrt()).collect(),
        rms: sq.iter().map(|s| (s / rows).sqrt()).collect(),
        mean,
    }
}

/// Which columns are constant by the rule in the module documentation.
pub fn near_constant_columns(stats: &ColumnStats, rel: f64) -> Vec<bool> {
    let scale = median(&stats.rms);
    stats
        .std
        .iter()
        .zip(&stats.mean)
        .map(|(&std, &mean)| std.is_nan() || std <= rel * (mean.abs() + scale))
        .collect()
}

/// Median (mean of the two middle values for an even count; 0 when empty),
/// as `numpy.median`.
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Column ranges `[c0, c1)` of `width` columns (the last may be narrower).
fn column_blocks(cols: usize, width: usize) -> Vec<(usize, usize)> {
    (0..cols.div_ceil(width))
        .map(|b| (b * width, ((b + 1) * width).min(cols)))
        .collect()
}

/// The standardised matrix `Z`, stored transposed (`cols x rows`, each
/// column contiguous): the GEMM kernels then read both operands along the
/// shared dimension, measured about 10% faster than row-major panels, and
/// any run of columns is one contiguous operand.
struct Standardized {
    rows: usize,
    cols: usize,
    blocks: Vec<(usize, usize)>,
    columns: Vec<f32>,
}

impl Standardized {
    /// Columns `c0..c1` of `Z`, one after the other.
    fn columns(&self, c0: usize, c1: usize) -> &[f32] {
        &self.columns[c0 * self.rows..c1 * self.rows]
    }
}

/// `z = (x - mean) / sqrt(sum (x - mean)²)`, and 0 for constant columns.
fn standardize(x: &MatrixView<'_>, stats: &ColumnStats, constant: &[bool]) -> Standardized {
    let scale: Vec<f64> = (0..x.cols())
        .map(|c| match constant[c] {
            true => 0.0,
            false => 1.0 / (stats.std[c] * (x.rows() as f64).sqrt()),
        })
        .collect();
    let rows = x.rows();
    let mut columns = vec![0.0f32; rows * x.cols()];
    columns
        .par_chunks_mut(stats_block(x.cols()) * rows.max(1))
        .zip(column_blocks(x.cols(), stats_block(x.cols())))
        .for_each(|(panel, (c0, c1))| standardized_panel(x, stats, &scale, (c0, c1), panel));
    let blocks = column_blocks(x.cols(), BLOCK);
    Standardized {
        rows,
        cols: x.cols(),
        blocks,
        columns,
    }
}

/// Columns `c0..c1` of `Z` into `panel`, transposed: sixteen rows at a
/// time are standardised together (vectorised along the rows), then each
/// column's sixteen values are stored as one whole cache line. Stored row
/// by row instead, every row wrote one value into each of the columns'
/// lines, which left the cache before they were full (measured 4x slower).
fn standardized_panel(
    x: &MatrixView<'_>,
    stats: &ColumnStats,
    scale: &[f64],
    (c0, c1): (usize, usize),
    panel: &mut [f32],
) {
    const GROUP: usize = 16;
    let (rows, width) = (x.rows(), c1 - c0);
    let (mean, scale) = (&stats.mean[c0..c1], &scale[c0..c1]);
    let mut group = vec![0.0f32; GROUP * width];
    for r0 in (0..rows).step_by(GROUP) {
        let n = GROUP.min(rows - r0);
        for (i, values) in group.chunks_exact_mut(width).take(n).enumerate() {
            let row = values.iter_mut().zip(&x.row(r0 + i)[c0..c1]);
            for ((z, &v), (&m, &s)) in row.zip(mean.iter().zip(scale)) {
                *z = ((f64::from(v) - m) * s) as f32;
            }
        }
        for (k, column) in panel.chunks_exact_mut(rows).take(width).enumerate() {
            for (i, z) in column[r0..r0 + n].iter_mut().enumerate() {
                *z = group[i * width + k];
            }
        }
    }
}

/// `out (m x n) = a bᵀ` for row-major `a (m x k)` and `b (n x k)`.
fn gemm_a_bt(a: &[f32], b: &[f32], k: usize, m: usize, n: usize, out: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == n * k && out.len() == m * n);
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: the assert above bounds every index the strides below reach:
    // lhs(i, p) = a[i*k + p], rhs(p, j) = b[j*k + p], dst(i, j) = out[i*n + j]
    // for i < m, j < n, p < k. `read_dst = false` means `out` is only written.
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// One tile of the correlation matrix: rows `i0..i0+height`, columns
/// `j0..j0+width`, row-major in `values`.
pub struct Tile<'a> {
    pub i0: usize,
    pub j0: usize,
    pub height: usize,
    pub width: usize,
    pub values: &'a [f32],
}

/// Strips computed in parallel before they are handed to the sink: a few
/// per thread, so both cores stay busy to the end while little memory is
/// held.
const STRIPS_PER_BATCH: usize = 6;

/// Calls `sink` with every strip of `Zᵀ Z` on and right of the diagonal:
/// rows `c0..c1` of a column block, columns `c0..` to the end.
///
/// Each strip is one single-threaded GEMM (the `gemm` crate does not split
/// products this small across threads itself) and strips run side by side,
/// the widest first on whichever thread is free. One product per strip
/// rather than per tile packs each block's columns once as the left-hand
/// side instead of once per tile.
fn for_each_upper_strip(z: &Standardized, mut sink: impl FnMut(Tile<'_>)) {
    for batch in z.blocks.chunks(STRIPS_PER_BATCH) {
        let products = widest_first(batch, |&(c0, c1)| strip_product(z, c0, c1));
        for (&(c0, c1), values) in batch.iter().zip(&products) {
            sink(Tile {
                i0: c0,
                j0: c0,
                height: c1 - c0,
                width: z.cols - c0,
                values,
            });
        }
    }
}

/// `f` of every item, on the pool's threads, each thread taking the next
/// item when it is free (the strips come widest first, so this is
/// longest-first scheduling; rayon's halving would give one thread the two
/// widest strips).
fn widest_first<T: Sync>(items: &[T], f: impl Fn(&T) -> Vec<f32> + Sync) -> Vec<Vec<f32>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let results: Vec<Mutex<Vec<f32>>> = items.iter().map(|_| Mutex::default()).collect();
    let next = AtomicUsize::new(0);
    let threads = rayon::current_num_threads().min(items.len()).max(1);
    (0..threads).into_par_iter().for_each(|_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { break };
        let values = f(item);
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = values;
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// Rows `c0..c1` of `Zᵀ Z`, columns `c0..` (the columns hold `Zᵀ`),
/// row-major.
fn strip_product(z: &Standardized, c0: usize, c1: usize) -> Vec<f32> {
    let width = z.cols - c0;
    let mut out = vec![0.0f32; (c1 - c0) * width];
    gemm_a_bt(
        z.columns(c0, c1),
        z.columns(c0, z.cols),
        z.rows,
        c1 - c0,
        width,
        &mut out,
    );
    out
}

/// Correlation distances `1 - |r|` of all column pairs, and which columns
/// were treated as constant.
#[derive(Clone, Debug)]
pub struct CorrelationDistances {
    pub distances: Condensed,
    /// Indices of the columns the near-constant rule zeroed.
    pub near_constant: Vec<usize>,
}

/// Standardises the columns and flags the constant ones.
fn prepare(x: &MatrixView<'_>) -> (Standardized, Vec<bool>) {
    let stats = column_stats(x);
    let constant = near_constant_columns(&stats, NEAR_CONSTANT_REL);
    (standardize(x, &stats, &constant), constant)
}

/// `1 - |r|` for every pair of columns, in SciPy's condensed order.
pub fn correlation_distances(x: &MatrixView<'_>) -> CorrelationDistances {
    let (z, constant) = prepare(x);
    let mut distances = Condensed::filled(x.cols(), 1.0);
    for_each_upper_strip(&z, |tile| {
        for a in 0..tile.height {
            let i = tile.i0 + a;
            let first = tile.j0.max(i + 1);
            if first >= tile.j0 + tile.width {
                continue;
            }
            let values = &tile.values[a * tile.width..(a + 1) * tile.width];
            let row = distances.row_mut(i);
            for j in first..tile.j0 + tile.width {
                row[j - i - 1] = 1.0 - abs_correlation(values[j - tile.j0]);
            }
        }
    });
    CorrelationDistances {
        distances,
        near_constant: indices_of(&constant),
    }
}

/// The full `cols x cols` Pearson correlation matrix (row-major, signed,
/// diagonal 1, constant columns 0 off the diagonal). For inspection and
/// tests; the selector itself only needs [`correlation_distances`].
pub fn correlation_matrix(x: &MatrixView<'_>) -> Vec<f32> {
    let n = x.cols();
    let (z, _) = prepare(x);
    let mut full = vec![0.0f32; n * n];
    for_each_upper_strip(&z, |tile| {
        for a in 0..tile.height {
            for b in 0..tile.width {
                let (i, j) = (tile.i0 + a, tile.j0 + b);
                let r = tile.values[a * tile.width + b].clamp(-1.0, 1.0);
                full[i * n + j] = r;
                full[j * n + i] = r;
            }
        }
    });
    for i in 0..n {
        full[i * n + i] = 1.0;
    }
    full
}

/// `|r|` as f64, clamped to 1 (rounding can push a product of unit vectors
/// just past it; NumPy's `corrcoef` clips the same way).
fn abs_correlation(r: f32) -> f64 {
    f64::from(r.abs()).min(1.0)
}

fn indices_of(flags: &[bool]) -> Vec<usize> {
    flags
        .iter()
        .enumerate()
        .filter_map(|(i, &f)| f.then_some(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_corr(x: &[f32], rows: usize, cols: usize, i: usize, j: usize) -> f64 {
        let col = |c: usize| (0..rows).map(move |r| f64::from(x[r * cols + c]));
        let (mi, mj) = (
            col(i).sum::<f64>() / rows as f64,
            col(j).sum::<f64>() / rows as f64,
        );
        let cov: f64 = col(i).zip(col(j)).map(|(a, b)| (a - mi) * (b - mj)).sum();
        let vi: f64 = col(i).map(|a| (a - mi) * (a - mi)).sum();
        let vj: f64 = col(j).map(|b| (b - mj) * (b - mj)).sum();
        cov / (vi * vj).sqrt()
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_naive_pearson_across_tile_boundaries() {
        let (rows, cols) = (50, BLOCK + 7);
        let mut x = pseudo_random(rows * cols, 7);
        // A large offset must not cost precision (two-pass centring).
        for r in 0..rows {
            x[r * cols + 3] += 1000.0;
            x[r * cols + BLOCK + 2] = x[r * cols + 3] * -2.0 + 5.0;
        }
        let view = MatrixView::new(&x, rows, cols).unwrap();
        let full = correlation_matrix(&view);
        let dist = correlation_distances(&view).distances;
        for &(i, j) in &[(0, 1), (3, BLOCK + 2), (5, BLOCK + 6), (BLOCK, BLOCK + 1)] {
            let want = naive_corr(&x, rows, cols, i, j);
            assert!(
                (f64::from(full[i * cols + j]) - want).abs() < 1e-5,
                "{i},{j}"
            );
            assert!(
                (dist.get(i, j) - (1.0 - want.abs())).abs() < 1e-5,
                "{i},{j}"
            );
        }
        assert!(dist.get(3, BLOCK + 2) < 1e-5);
    }

    #[test]
    fn constant_and_tiny_columns_get_distance_one() {
        let (rows, cols) = (40, 4);
        let base = pseudo_random(rows, 3);
        let mut x = vec![0.0f32; rows * cols];
        for r in 0..rows {
            x[r * cols] = base[r];
            x[r * cols + 1] = 0.25; // constant
            x[r * cols + 2] = base[r] * 1e-8; // tiny copy of column 0
            x[r * cols + 3] = base[r] * 2.0; // real copy
        }
        let view = MatrixView::new(&x, rows, cols).unwrap();
        let d = correlation_distances(&view);
        assert_eq!(d.near_constant, vec![1, 2]);
        assert_eq!(d.distances.get(0, 1), 1.0);
        assert_eq!(d.distances.get(0, 2), 1.0);
        assert!(d.distances.get(0, 3) < 1e-6);
    }

    #[test]
    fn median_matches_numpy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
