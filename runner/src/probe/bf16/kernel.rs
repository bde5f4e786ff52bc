//! `c = a b` with bf16 operands and f32 sums: on AMX tiles where the CPU
//! and OS allow it, otherwise the f32 gemm on the same bf16 values (the
//! same products, summed in another order).

use ::gemm::Parallelism;

use super::super::gemm::{matmul_into, MatRef};
use super::amx;
use super::layout::bf16_to_f32;

/// Multiples the tile kernel works in: rows and columns of C by 16, the
/// inner dimension by 32 (callers pad their buffers with zeros).
pub(crate) const TILE_ROWS: usize = 16;
pub(crate) const TILE_DEPTH: usize = 32;
/// bf16 values in one tile (16 rows of 64 bytes).
pub(crate) const TILE: usize = TILE_ROWS * TILE_DEPTH;

/// A left-hand side (m x k, raw bf16 bits) stored as whole tiles, each a
/// contiguous kilobyte the tile unit loads at full speed: tile
/// (i / 16, p / 32) starts at `((i / 16) * (k / 32) + p / 32) * TILE` and
/// holds its 16 rows of 32 values one after the other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub data: &'a [u16],
    pub rows: usize,
    pub cols: usize,
}

/// Where element (i, p) of a tiled left-hand side with `cols` columns
/// lives (see [`Operand`]).
pub(crate) fn lhs_index(cols: usize, i: usize, p: usize) -> usize {
    ((i / TILE_ROWS) * (cols / TILE_DEPTH) + p / TILE_DEPTH) * TILE
        + (i % TILE_ROWS) * TILE_DEPTH
        + p % TILE_DEPTH
}

/// A right-hand side (k x n) stored as whole tiles with rows in pairs, as
/// the tile unit reads it: tile (p / 32, j / 16) starts at
/// `(first_tile + (p / 32) * tiles_per_step + j / 16) * TILE` and holds
/// element (p, j) at `((p % 32) / 2) * 32 + (j % 16) * 2 + p % 2`. The view
/// may start inside a wider matrix (`first_tile`, `tiles_per_step`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairOperand<'a> {
    pub data: &'a [u16],
    pub rows: usize,
    pub cols: usize,
    pub first_tile: usize,
    pub tiles_per_step: usize,
}

impl PairOperand<'_> {
    /// Where element (p, j) of the view lives in `data`.
    pub fn index(&self, p: usize, j: usize) -> usize {
        pair_index(self.first_tile, self.tiles_per_step, p, j)
    }
}

/// Where element (p, j) of a pair-tiled matrix lives (see [`PairOperand`]).
pub(crate) fn pair_index(first_tile: usize, tiles_per_step: usize, p: usize, j: usize) -> usize {
    (first_tile + (p / TILE_DEPTH) * tiles_per_step + j / TILE_ROWS) * TILE
        + (p % TILE_DEPTH) / 2 * TILE_DEPTH
        + (j % TILE_ROWS) * 2
        + p % 2
}

/// Which code computes the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Intel AMX tiles (`TDPBF16PS`).
    Amx,
    /// The f32 gemm on the bf16 values, on CPUs without AMX.
    Portable,
}

impl Backend {
    /// The best backend this process can use.
    pub fn detect() -> Self {
        if amx::available() {
            Backend::Amx
        } else {
            Backend::Portable
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Amx => "amx tiles",
            Backend::Portable => "f32 gemm of bf16 values, no AMX",
        }
    }
}

/// `c = a b` into `c` (row stride `ldc`), overwriting it, on `backend`.
///
/// Panics when the shapes disagree, are not whole tiles, or a view does not
/// fit its slice: those are bugs of the caller's padding, not user input.
pub(crate) fn matmul_bf16(
    backend: Backend,
    a: Operand<'_>,
    b: PairOperand<'_>,
    c: &mut [f32],
    ldc: usize,
) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(k, b.rows, "bf16 matmul: inner dimensions differ");
    assert!(
        m % TILE_ROWS == 0 && n % TILE_ROWS == 0 && k % TILE_DEPTH == 0,
        "bf16 matmul: {m} x {n} x {k} is not whole tiles"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(m * k <= a.data.len(), "bf16 matmul: a outside its data");
    assert!(
        k == 0 || b.index(k - 1, n - 1) < b.data.len(),
        "bf16 matmul: b outside its data"
    );
    assert!(
        ldc >= n && (m - 1) * ldc + n <= c.len(),
        "bf16 matmul: c outside its buffer"
    );
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    match backend {
        // SAFETY: AMX was detected and granted (Backend::Amx is only made by
        // `detect`, or by tests after checking `amx::available`), the shapes
        // are whole tiles and every tile lies inside its slice (checked above).
        Backend::Amx if amx::available() => unsafe { amx::matmul(a, b, c, ldc) },
        _ => portable(a, b, c, ldc),
    }
}

/// The same product through the f32 gemm: both operands widened to f32
/// (exactly), so only the order of the sums differs from the tiles.
fn portable(a: Operand<'_>, b: PairOperand<'_>, c: &mut [f32], ldc: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let mut a32 = vec![0.0f32; m * k];
    for (i, row) in a32.chunks_exact_mut(k).enumerate() {
        for (p, v) in row.iter_mut().enumerate() {
            *v = bf16_to_f32(a.data[lhs_index(k, i, p)]);
        }
    }
    let mut b32 = vec![0.0f32; k * n];
    for (p, row) in b32.chunks_exact_mut(n).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = bf16_to_f32(b.data[b.index(p, j)]);
        }
    }
    let mut out = Vec::new();
    matmul_into(
        MatRef::row_major(&a32, m, k),
        MatRef::row_major(&b32, k, n),
        &mut out,
        Parallelism::None,
    );
    for (dst, src) in c.chunks_mut(ldc).zip(out.chunks_exact(n)) {
        dst[..n].copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::f32_to_bf16;
    use super::*;

    /// Deterministic bf16 values in [-2, 2).
    fn values(len: usize, salt: u32) -> Vec<u16> {
        (0..len as u32)
            .map(|i| {
                let h = (i ^ salt).wrapping_mul(2_654_435_761) >> 8;
                f32_to_bf16(h as f32 / (1u32 << 22) as f32 - 2.0)
            })
            .collect()
    }

    /// The product in f64 straight from the definitions of the layouts.
    fn reference(a: Operand<'_>, b: PairOperand<'_>) -> Vec<f64> {
        let mut out = vec![0.0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|p| {
                        let x = bf16_to_f32(a.data[lhs_index(a.cols, i, p)]);
                        let y = bf16_to_f32(b.data[b.index(p, j)]);
                        x as f64 * y as f64
                    })
                    .sum();
            }
        }
        out
    }

    fn backends() -> Vec<Backend> {
        let mut all = vec![Backend::Portable];
        if amx::available() {
            all.push(Backend::Amx);
        }
        all
    }

    #[test]
    fn every_backend_multiplies_like_the_definition() {
        // 48 x 80 x 96 covers 2 x 2 blocks and the odd row and column tile;
        // b is a view inside a wider matrix, as a bank's probe reads it.
        let (m, n, k, ldc) = (48, 80, 96, 85);
        let a_data = values(m * k, 1);
        let b_data = values((k / TILE_DEPTH) * 9 * TILE, 2);
        let a = Operand {
            data: &a_data,
            rows: m,
            cols: k,
        };
        let b = PairOperand {
            data: &b_data,
            rows: k,
            cols: n,
            first_tile: 3,
            tiles_per_step: 9,
        };
        let expected = reference(a, b);
        for backend in backends() {
            let mut c = vec![f32::NAN; m * ldc];
            matmul_bf16(backend, a, b, &mut c, ldc);
            for i in 0..m {
                for j in 0..n {
                    let (got, want) = (c[i * ldc + j] as f64, expected[i * n + j]);
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{backend:?} ({i}, {j}): {got} vs {want}"
                    );
                }
                // The padding between rows of C is left alone.
                assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|v| v.is_nan()));
            }
        }
    }

    #[test]
    fn the_tiles_run_where_the_cpu_has_them() {
        // On a CPU with AMX (and Linux 5.16+), detection must pick the tiles;
        // elsewhere the portable product, never a crash.
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_says_amx = flags.contains("amx_bf16") && flags.contains("amx_tile");
        let turned_off = std::env::var_os("SIEVE_NO_AMX").is_some_and(|v| v == "1");
        let expected = if cpu_says_amx && cfg!(target_os = "linux") && !turned_off {
            Backend::Amx
        } else {
            Backend::Portable
        };
        assert_eq!(Backend::detect(), expected);
    }

    #[test]
    #[should_panic(expected = "whole tiles")]
    fn partial_tiles_are_refused() {
        let data = vec![0u16; 16 * 40];
        let a = Operand {
            data: &data,
            rows: 16,
            cols: 20,
        };
        let b = PairOperand {
            data: &data,
            rows: 20,
            cols: 16,
            first_tile: 0,
            tiles_per_step: 1,
        };
        matmul_bf16(Backend::Portable, a, b, &mut [0.0; 256], 16);
    }
}
