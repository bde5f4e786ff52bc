//! bf16 rounding and the layouts the tile kernel reads: the training rows
//! converted once, and each mini-batch laid out twice (columns in pairs for
//! the scores, rows in pairs for the gradient).

use rayon::prelude::*;

use super::kernel::{lhs_index, PairOperand, TILE, TILE_DEPTH, TILE_ROWS};

/// f32 to bf16 bits, rounded to nearest even (finite inputs: the probe's
/// data is checked finite; an overflow rounds to infinity as it should).
#[inline(always)]
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// bf16 bits to f32 (exact).
#[inline(always)]
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `src` rounded to bf16 into `dst` (same length); a plain loop the
/// compiler vectorises.
pub(crate) fn round_into(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32_to_bf16(s);
    }
}

/// The whole row-major [rows, cols] matrix in bf16, converted once so that
/// every epoch's gathers move half the bytes.
pub(crate) fn rounded_matrix(x: &[f32]) -> Vec<u16> {
    let mut out = vec![0u16; x.len()];
    out.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16))
        .for_each(|(d, s)| round_into(s, d));
    out
}

/// Narrower batches are laid out on the calling thread, and not ahead of
/// the step: waking a second thread every step cost more than the copy
/// (`probe_speed` at 5 and 241 columns spent ~20% of its time switching
/// threads).
pub(crate) const WIDE_BATCH_COLUMNS: usize = 1024;

pub(crate) fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

/// Rounds row `i` of an f32 matrix into a tiled left-hand side with
/// `cols` (a multiple of 32) columns; columns past `src` keep their zeros.
pub(crate) fn round_row_into_tiles(src: &[f32], dst: &mut [u16], cols: usize, i: usize) {
    for (chunk, values) in src.chunks(TILE_DEPTH).enumerate() {
        let at = lhs_index(cols, i, chunk * TILE_DEPTH);
        round_into(values, &mut dst[at..at + values.len()]);
    }
}

/// One mini-batch in the two tiled layouts of the products (see
/// `kernel::PairOperand`), so every probe of a bank reads its columns as
/// whole tiles:
/// - `by_column_pairs`: the batch transposed, k = the columns (32 per
///   step), n = the batch rows: the right-hand side of `scores^T = W x^T`;
///   a probe whose columns start at s (a multiple of 32) starts at tile
///   `(s / 32) * tiles_per_step`;
/// - `by_row_pairs`: k = the batch rows, n = the columns (16 per tile):
///   the right-hand side of `dW = dZ^T x`; a probe starts at tile `s / 16`.
///
/// Padding is zeros or stale finite values of an earlier batch; the other
/// operand of the product is zero there, so they add nothing.
pub(crate) struct BatchLayouts {
    cols: usize,
    /// 32-column steps of `by_column_pairs`.
    column_steps: usize,
    /// 16-column tiles per step of `by_row_pairs`.
    column_tiles: usize,
    pub rows: usize,
    pub by_column_pairs: Vec<u16>,
    pub by_row_pairs: Vec<u16>,
}

impl BatchLayouts {
    pub fn new(cols: usize, max_rows: usize) -> Self {
        let column_steps = cols.div_ceil(TILE_DEPTH);
        let column_tiles = cols.div_ceil(TILE_ROWS);
        Self {
            cols,
            column_steps,
            column_tiles,
            rows: 0,
            by_column_pairs: vec![
                0;
                column_steps * round_up(max_rows, TILE_ROWS) / TILE_ROWS * TILE
            ],
            by_row_pairs: vec![
                0;
                round_up(max_rows, TILE_DEPTH) / TILE_DEPTH * column_tiles * TILE
            ],
        }
    }

    /// Rows rounded up to whole tiles of the scores' columns.
    pub fn rows16(&self) -> usize {
        round_up(self.rows, TILE_ROWS)
    }

    /// Rows rounded up to whole steps of the gradient's inner dimension.
    pub fn rows32(&self) -> usize {
        round_up(self.rows, TILE_DEPTH)
    }

    /// The columns `start..start + depth` (start a multiple of 32) as the
    /// right-hand side of the scores.
    pub fn columns_by_pairs(&self, start: usize, depth: usize) -> PairOperand<'_> {
        let tiles_per_step = self.rows16() / TILE_ROWS;
        PairOperand {
            data: &self.by_column_pairs,
            rows: depth,
            cols: self.rows16(),
            first_tile: start / TILE_DEPTH * tiles_per_step,
            tiles_per_step,
        }
    }

    /// The columns `start..start + width` (start a multiple of 16) as the
    /// right-hand side of the weight gradient.
    pub fn rows_by_pairs(&self, start: usize, width: usize) -> PairOperand<'_> {
        PairOperand {
            data: &self.by_row_pairs,
            rows: self.rows32(),
            cols: width,
            first_tile: start / TILE_ROWS,
            tiles_per_step: self.column_tiles,
        }
    }

    /// Lays out the first columns (as many as the layouts were made for)
    /// of rows `batch` of `x` (bf16, row-major, rows `stride` apart): the
    /// two layouts on two threads for wide batches, each reading the rows
    /// once.
    pub fn fill(&mut self, x: &[u16], stride: usize, batch: &[u32]) {
        let capacity = self.by_row_pairs.len() / (self.column_tiles * TILE) * TILE_DEPTH;
        assert!(
            batch.len() <= capacity,
            "batch larger than the layouts were made for"
        );
        self.rows = batch.len();
        let cols = self.cols;
        let rows: Vec<&[u16]> = batch
            .iter()
            .map(|&i| &x[i as usize * stride..i as usize * stride + cols])
            .collect();
        let tiles_per_step = self.rows16() / TILE_ROWS;
        let (column_tiles, column_steps) = (self.column_tiles, self.column_steps);
        let (by_rows, by_columns) = (&mut self.by_row_pairs, &mut self.by_column_pairs);
        let mut by_row = || fill_row_pairs(&rows, cols, column_tiles, by_rows);
        let mut by_column = || fill_column_pairs(&rows, column_steps, tiles_per_step, by_columns);
        if cols >= WIDE_BATCH_COLUMNS {
            rayon::join(by_row, by_column);
        } else {
            by_row();
            by_column();
        }
    }
}

/// `by_row_pairs`: pair-row q of tile (q / 16, c / 16) holds rows 2q and
/// 2q + 1 interleaved over the tile's 16 columns.
fn fill_row_pairs(rows: &[&[u16]], cols: usize, tiles: usize, out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was just detected.
            unsafe { simd::fill_row_pairs_avx2(rows, cols, tiles, out) };
            return;
        }
    }
    fill_row_pairs_scalar(rows, cols, tiles, out);
}

fn fill_row_pairs_scalar(rows: &[&[u16]], cols: usize, tiles: usize, out: &mut [u16]) {
    for (q, pair) in rows.chunks(2).enumerate() {
        for tile in 0..tiles {
            let at = row_pair_at(q, tile, tiles);
            let span = tile * TILE_ROWS..((tile + 1) * TILE_ROWS).min(cols);
            let line = &mut out[at..at + TILE_DEPTH];
            line.fill(0);
            for (h, row) in pair.iter().enumerate() {
                for (c, &v) in row[span.clone()].iter().enumerate() {
                    line[2 * c + h] = v;
                }
            }
        }
    }
}

/// Where pair-row q's part of column tile `tile` starts in `by_row_pairs`.
fn row_pair_at(q: usize, tile: usize, tiles: usize) -> usize {
    ((q / TILE_ROWS) * tiles + tile) * TILE + (q % TILE_ROWS) * TILE_DEPTH
}

/// `by_column_pairs`: tile (step, block) holds columns step*32.. of rows
/// block*16.., transposed as 32-bit pairs.
fn fill_column_pairs(rows: &[&[u16]], steps: usize, tiles_per_step: usize, out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: AVX-512 BW (and F) was just detected.
            unsafe { simd::fill_column_pairs_avx512(rows, steps, tiles_per_step, out) };
            return;
        }
    }
    for (block, block_rows) in rows.chunks(TILE_ROWS).enumerate() {
        for step in 0..steps {
            let at = (step * tiles_per_step + block) * TILE;
            transpose_pairs_scalar(block_rows, step * TILE_DEPTH, &mut out[at..at + TILE]);
        }
    }
}

/// One `by_column_pairs` tile: columns `first..first + 32` of up to 16
/// rows, transposed as 32-bit pairs: `tile[(t % 16) * 32 + 2 r + h] =
/// rows[r][first + 2 t + h]`; zeros past the matrix and for missing rows.
fn transpose_pairs_scalar(rows: &[&[u16]], first: usize, tile: &mut [u16]) {
    tile.fill(0);
    for (r, row) in rows.iter().enumerate() {
        let end = (first + TILE_DEPTH).min(row.len());
        for (offset, &v) in row[first.min(end)..end].iter().enumerate() {
            tile[offset / 2 * TILE_DEPTH + 2 * r + offset % 2] = v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::super::transpose::transpose_16x16;
    use super::{row_pair_at, TILE, TILE_DEPTH, TILE_ROWS};

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn fill_row_pairs_avx2(
        rows: &[&[u16]],
        cols: usize,
        tiles: usize,
        out: &mut [u16],
    ) {
        let full_tiles = cols / TILE_ROWS;
        if tiles == 0 {
            return;
        }
        for (q, pair) in rows.chunks(2).enumerate() {
            let first_line = row_pair_at(q, 0, tiles);
            // One bounds check per pair for the pointer loop below: the
            // last tile's line of this pair lies inside `out`.
            assert!(first_line + (tiles - 1) * TILE + TILE_DEPTH <= out.len());
            let mut done = 0;
            if let [a, b] = pair {
                assert!(a.len() >= full_tiles * TILE_ROWS && b.len() >= full_tiles * TILE_ROWS);
                let out = out.as_mut_ptr().add(first_line);
                for tile in 0..full_tiles {
                    let c = tile * TILE_ROWS;
                    // SAFETY: columns c..c + 16 exist in both rows and the
                    // tile's 32-value line is inside `out` (asserted above).
                    interleave16(a.as_ptr().add(c), b.as_ptr().add(c), out.add(tile * TILE));
                }
                done = full_tiles;
            }
            // The last, partial column tile, or every tile of an unpaired row.
            for tile in done..tiles {
                let at = first_line + tile * TILE;
                let line = &mut out[at..at + TILE_DEPTH];
                let first = tile * TILE_ROWS;
                line.fill(0);
                for (h, row) in pair.iter().enumerate() {
                    for (c, &v) in row[first..(first + TILE_ROWS).min(cols)].iter().enumerate() {
                        line[2 * c + h] = v;
                    }
                }
            }
        }
    }

    /// `out[2c] = a[c]`, `out[2c + 1] = b[c]`, c < 16 (unaligned pointers;
    /// the caller guarantees 16 readable values and 32 writable ones).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn interleave16(a: *const u16, b: *const u16, out: *mut u16) {
        let va = _mm256_loadu_si256(a.cast());
        let vb = _mm256_loadu_si256(b.cast());
        // unpack works inside 128-bit lanes; the permutes put pairs 0..7
        // then 8..15 back in order.
        let low = _mm256_unpacklo_epi16(va, vb);
        let high = _mm256_unpackhi_epi16(va, vb);
        let head = _mm256_permute2x128_si256::<0x20>(low, high);
        let tail = _mm256_permute2x128_si256::<0x31>(low, high);
        _mm256_storeu_si256(out.cast(), head);
        _mm256_storeu_si256(out.add(16).cast(), tail);
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn fill_column_pairs_avx512(
        rows: &[&[u16]],
        steps: usize,
        tiles_per_step: usize,
        out: &mut [u16],
    ) {
        for (block, block_rows) in rows.chunks(TILE_ROWS).enumerate() {
            for step in 0..steps {
                let at = (step * tiles_per_step + block) * TILE;
                transpose_pairs(block_rows, step * TILE_DEPTH, &mut out[at..at + TILE]);
            }
        }
    }

    /// One tile: the 16 rows' 32-bit pairs transposed in registers (see
    /// `transpose_16x16`). Same result as `transpose_pairs_scalar`.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    pub(super) fn transpose_pairs(rows: &[&[u16]], first: usize, tile: &mut [u16]) {
        let tile = &mut tile[..TILE];
        let mut r = [_mm512_setzero_si512(); TILE_ROWS];
        for (reg, row) in r.iter_mut().zip(rows) {
            let available = row.len().saturating_sub(first).min(TILE_DEPTH);
            let mask: __mmask32 = if available == TILE_DEPTH {
                u32::MAX
            } else {
                (1u32 << available) - 1
            };
            if available > 0 {
                // SAFETY: the mask covers only values inside the row.
                *reg = unsafe { _mm512_maskz_loadu_epi16(mask, row.as_ptr().add(first).cast()) };
            }
        }
        transpose_16x16(&mut r);
        for (pair, v) in r.iter().enumerate() {
            let line = &mut tile[pair * TILE_DEPTH..(pair + 1) * TILE_DEPTH];
            // SAFETY: `line` holds the 32 values (64 bytes) stored.
            unsafe { _mm512_storeu_si512(line.as_mut_ptr().cast(), *v) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties to even.
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0), 0x3F82);
        assert_eq!(f32_to_bf16(-2.5), 0xC020);
        for v in [0.0f32, -0.0, 3.0, -1e-30, 6.5e4] {
            let back = bf16_to_f32(f32_to_bf16(v));
            assert!((back - v).abs() <= v.abs() / 256.0, "{v} -> {back}");
        }
    }

    #[test]
    fn layouts_of_the_first_columns_read_rows_of_a_wider_matrix() {
        let (rows, cols, width) = (20, 100, 45);
        let x: Vec<u16> = (0..rows * cols).map(|v| v as u16 + 1).collect();
        let narrow: Vec<u16> = x
            .chunks_exact(cols)
            .flat_map(|row| &row[..width])
            .copied()
            .collect();
        let batch: Vec<u32> = vec![3, 17, 0, 9, 11, 19, 4];
        let mut from_wide = BatchLayouts::new(width, 16);
        from_wide.fill(&x, cols, &batch);
        let mut from_narrow = BatchLayouts::new(width, 16);
        from_narrow.fill(&narrow, width, &batch);
        assert_eq!(from_wide.by_column_pairs, from_narrow.by_column_pairs);
        assert_eq!(from_wide.by_row_pairs, from_narrow.by_row_pairs);
    }

    #[test]
    fn both_layouts_hold_every_value_of_the_batch() {
        let (rows, cols) = (40, 70);
        let x: Vec<u16> = (0..rows * cols).map(|v| v as u16 + 1).collect();
        // An odd batch of 17, shuffled: a partial row block, an odd pair
        // and a partial column step are all exercised.
        let batch: Vec<u32> = vec![5, 0, 39, 12, 7, 33, 20, 1, 2, 18, 30, 11, 4, 25, 9, 16, 22];
        let mut layouts = BatchLayouts::new(cols, 32);
        layouts.fill(&x, cols, &batch);
        let by_columns = layouts.columns_by_pairs(0, round_up(cols, TILE_DEPTH));
        let by_rows = layouts.rows_by_pairs(0, round_up(cols, TILE_ROWS));
        for (r, &i) in batch.iter().enumerate() {
            for c in 0..cols {
                let v = x[i as usize * cols + c];
                assert_eq!(
                    layouts.by_column_pairs[by_columns.index(c, r)],
                    v,
                    "({r}, {c})"
                );
                assert_eq!(layouts.by_row_pairs[by_rows.index(r, c)], v, "({r}, {c})");
            }
        }
        // Past the matrix and past the batch: zeros.
        for r in 0..batch.len() {
            for c in cols..round_up(cols, TILE_DEPTH) {
                assert_eq!(layouts.by_column_pairs[by_columns.index(c, r)], 0);
            }
        }
        for c in 0..cols {
            assert_eq!(layouts.by_row_pairs[by_rows.index(batch.len(), c)], 0);
        }
        // A view from column 32 reads the same values.
        let from_32 = layouts.columns_by_pairs(32, 32);
        assert_eq!(
            layouts.by_column_pairs[from_32.index(3, 5)],
            x[batch[5] as usize * cols + 35]
        );
    }

    #[test]
    fn the_simd_layouts_equal_the_scalar_ones() {
        let cols: usize = 45;
        let rows: Vec<Vec<u16>> = (0..13)
            .map(|r| (0..cols).map(|c| (r * 100 + c + 1) as u16).collect())
            .collect();
        let views: Vec<&[u16]> = rows.iter().map(|r| r.as_slice()).collect();
        let tiles = cols.div_ceil(TILE_ROWS);
        let mut scalar = vec![0u16; TILE * tiles];
        let mut dispatched = vec![0u16; TILE * tiles];
        fill_row_pairs_scalar(&views, cols, tiles, &mut scalar);
        fill_row_pairs(&views, cols, tiles, &mut dispatched);
        assert_eq!(scalar, dispatched);
        let steps = cols.div_ceil(TILE_DEPTH);
        let mut scalar = vec![7u16; TILE * steps];
        let mut dispatched = vec![9u16; TILE * steps];
        for step in 0..steps {
            let at = step * TILE;
            transpose_pairs_scalar(&views, step * TILE_DEPTH, &mut scalar[at..at + TILE]);
        }
        fill_column_pairs(&views, steps, 1, &mut dispatched);
        assert_eq!(scalar, dispatched);
    }
}
