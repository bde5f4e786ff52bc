//! Dense matrices borrowed across the plugin boundary without copying.

use abi_stable::{std_types::RSlice, StableAbi};

/// A borrowed row-major `rows x cols` matrix of `f32`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct MatrixView<'a> {
    pub data: RSlice<'a, f32>,
    pub rows: u64,
    pub cols: u64,
}

impl<'a> MatrixView<'a> {
    /// Wraps `data` as a `rows x cols` matrix; `None` when the sizes disagree.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Option<Self> {
        (rows.checked_mul(cols)? == data.len()).then(|| MatrixView {
            data: RSlice::from_slice(data),
            rows: rows as u64,
            cols: cols as u64,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    pub fn cols(&self) -> usize {
        self.cols as usize
    }

    pub fn as_slice(&self) -> &'a [f32] {
        self.data.as_slice()
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &'a [f32] {
        let cols = self.cols();
        &self.as_slice()[i * cols..(i + 1) * cols]
    }

    /// Column `j` copied out (columns are strided in row-major storage).
    pub fn column(&self, j: usize) -> Vec<f32> {
        (0..self.rows()).map(|i| self.row(i)[j]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_checks_shape_and_indexes_rows_and_columns() {
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert!(MatrixView::new(&data, 4, 2).is_none());
        let m = MatrixView::new(&data, 2, 3).unwrap();
        assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
        assert_eq!(m.column(2), vec![3.0, 6.0]);
    }
}
