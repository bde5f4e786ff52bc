//! Matrix products of the Adam solver, through the `gemm` crate directly
//! (the crate candle's CPU matmul calls, with the same arguments).
//!
//! Going around candle lets a probe bank run each probe's products on one
//! thread while the probes themselves run in parallel: at the probe's sizes
//! (128-row batches, 45 outputs) splitting every small product over the
//! cores costs more in thread wake-ups than it gains.

use ::gemm::Parallelism;

/// A read-only strided matrix: element (i, j) is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major [rows, cols] matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same memory.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Columns `range` of this matrix, as a view.
    pub fn columns(self, range: std::ops::Range<usize>) -> Self {
        assert!(range.end <= self.cols, "column range outside the matrix");
        Self {
            data: &self.data[(range.start * self.col_stride).min(self.data.len())..],
            cols: range.len(),
            ..self
        }
    }

    /// Whether every element lies inside `data` (what makes the unsafe
    /// gemm call sound).
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// How many threads a product may use: 1 for a probe of a bank (the bank
/// is parallel over probes), candle's count for a probe trained alone.
pub(crate) fn parallelism(threads: usize) -> Parallelism {
    if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// `dst = a b`, row-major [a.rows, b.cols]; `dst` is resized.
pub(crate) fn matmul_into(a: MatRef<'_>, b: MatRef<'_>, dst: &mut Vec<f32>, par: Parallelism) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions differ");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "matmul: view outside its data"
    );
    let (m, n, k) = (a.rows, b.cols, a.cols);
    // gemm overwrites every value of `dst` (read_dst is false), so a
    // buffer of the right size from the previous step is not zeroed again
    // (that memset was 1.4% of a selection); k = 0 writes nothing.
    if dst.len() != m * n || k == 0 {
        dst.clear();
        dst.resize(m * n, 0.0);
    }
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: both views were checked to lie inside their slices, `dst`
    // holds m * n values written with row stride n, and the three buffers
    // do not overlap (`dst` is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop.
    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|p| {
                        a.data[i * a.row_stride + p * a.col_stride]
                            * b.data[p * b.row_stride + j * b.col_stride]
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_views_multiply_like_the_textbook() {
        let x: Vec<f32> = (0..7 * 9).map(|v| (v % 11) as f32 - 5.0).collect();
        let w: Vec<f32> = (0..4 * 3).map(|v| (v % 5) as f32 * 0.5).collect();
        let xm = MatRef::row_major(&x, 7, 9);
        // Columns 2..5 of x times w^T (w is [4 outputs, 3 features]).
        let a = xm.columns(2..5);
        let b = MatRef::row_major(&w, 4, 3).t();
        for par in [Parallelism::None, Parallelism::Rayon(2)] {
            let mut dst = Vec::new();
            matmul_into(a, b, &mut dst, par);
            assert_eq!(dst, naive(a, b));
            // And a transposed left-hand side: x[:, 2..5]^T x[:, 2..5].
            matmul_into(a.t(), a, &mut dst, par);
            assert_eq!(dst, naive(a.t(), a));
        }
    }

    #[test]
    fn a_reused_buffer_is_overwritten_not_added_to() {
        let x: Vec<f32> = (0..5 * 4).map(|v| (v % 7) as f32 - 3.0).collect();
        let a = MatRef::row_major(&x, 5, 4);
        // Same size as the product, full of values that must not survive.
        let mut dst = vec![f32::NAN; 5 * 5];
        matmul_into(a, a.t(), &mut dst, Parallelism::None);
        assert_eq!(dst, naive(a, a.t()));
        // No inner dimension: a product of zeros, whatever the buffer held.
        let empty = MatRef::row_major(&[], 5, 0);
        let mut dst = vec![f32::NAN; 5 * 5];
        matmul_into(empty, empty.t(), &mut dst, Parallelism::None);
        assert_eq!(dst, vec![0.0; 25]);
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_are_refused() {
        let x = [1.0f32; 6];
        let m = MatRef::row_major(&x, 2, 3);
        matmul_into(m, m, &mut Vec::new(), Parallelism::None);
    }
}
