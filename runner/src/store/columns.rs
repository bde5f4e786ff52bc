//! Which columns of the activation matrix a probe or selector sees.

use std::ops::Range;

use rayon::prelude::*;

/// Which columns a probe sees.
#[derive(Debug, Clone)]
pub enum Columns {
    /// A contiguous block, e.g. the layers 0..=k.
    Range(Range<usize>),
    /// Any set of columns, in the order given.
    List(Vec<usize>),
}

impl Columns {
    pub fn len(&self) -> usize {
        match self {
            Columns::Range(r) => r.len(),
            Columns::List(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions `within` of these columns (e.g. the first N of a ranked
    /// list, or one layer of the layers 0..=k).
    pub fn sub(&self, within: Range<usize>) -> Columns {
        match self {
            Columns::Range(r) => Columns::Range(r.start + within.start..r.start + within.end),
            Columns::List(l) => Columns::List(l[within].to_vec()),
        }
    }

    /// Copies these columns of a row-major matrix into a new one.
    pub fn gather(&self, matrix: &[f32], cols: usize) -> Vec<f32> {
        let width = self.len();
        let rows = matrix.len().checked_div(cols).unwrap_or(0);
        let mut out = vec![0f32; rows * width];
        if width == 0 {
            return out;
        }
        out.par_chunks_mut(width)
            .zip(matrix.par_chunks(cols))
            .for_each(|(dst, src)| match self {
                Columns::Range(r) => dst.copy_from_slice(&src[r.clone()]),
                Columns::List(list) => {
                    for (d, &c) in dst.iter_mut().zip(list) {
                        *d = src[c];
                    }
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_picks_the_named_columns_of_every_row() {
        let matrix: Vec<f32> = (0..12).map(|v| v as f32).collect(); // 3 x 4
        assert_eq!(
            Columns::Range(1..3).gather(&matrix, 4),
            vec![1., 2., 5., 6., 9., 10.]
        );
        assert_eq!(
            Columns::List(vec![3, 0]).gather(&matrix, 4),
            vec![3., 0., 7., 4., 11., 8.]
        );
    }

    #[test]
    fn sub_picks_positions_of_the_columns() {
        assert_eq!(
            Columns::Range(4..10).sub(1..3).gather(&[0.0; 20], 10).len(),
            4
        );
        match Columns::Range(4..10).sub(1..3) {
            Columns::Range(r) => assert_eq!(r, 5..7),
            other => panic!("expected a range, got {other:?}"),
        }
        match Columns::List(vec![9, 2, 7, 1]).sub(1..3) {
            Columns::List(l) => assert_eq!(l, vec![2, 7]),
            other => panic!("expected a list, got {other:?}"),
        }
    }
}
