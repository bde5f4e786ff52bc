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

    /// Where these columns sit among `held` (positions, in this order), or
    /// `None` when some of them are not held.
    pub fn positions_in(&self, held: &Columns) -> Option<Columns> {
        match (self, held) {
            (Columns::Range(r), _) if r.is_empty() => Some(Columns::Range(0..0)),
            (Columns::Range(r), Columns::Range(h)) => (h.start <= r.start && r.end <= h.end)
                .then(|| Columns::Range(r.start - h.start..r.end - h.start)),
            _ => {
                let position: std::collections::HashMap<usize, usize> =
                    held.iter().enumerate().map(|(i, c)| (c, i)).collect();
                self.iter()
                    .map(|c| position.get(&c).copied())
                    .collect::<Option<Vec<usize>>>()
                    .map(Columns::List)
            }
        }
    }

    /// The columns in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let (range, list) = match self {
            Columns::Range(r) => (Some(r.clone()), None),
            Columns::List(l) => (None, Some(l.iter().copied())),
        };
        range
            .into_iter()
            .flatten()
            .chain(list.into_iter().flatten())
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
    fn positions_in_held_columns_name_where_each_column_sits() {
        let held = Columns::Range(10..20);
        let at =
            |c: Columns, held: &Columns| c.positions_in(held).map(|p| p.iter().collect::<Vec<_>>());
        assert_eq!(at(Columns::Range(12..15), &held), Some(vec![2, 3, 4]));
        assert_eq!(
            at(Columns::List(vec![19, 10, 14]), &held),
            Some(vec![9, 0, 4])
        );
        assert_eq!(at(Columns::Range(15..21), &held), None, "21 is not held");
        assert_eq!(at(Columns::List(vec![11, 9]), &held), None, "9 is not held");
        assert_eq!(at(Columns::Range(3..3), &held), Some(vec![]));
        let listed = Columns::List(vec![7, 3, 5]);
        assert_eq!(at(Columns::List(vec![5, 7]), &listed), Some(vec![2, 0]));
        assert_eq!(at(Columns::Range(3..5), &listed), None, "4 is not held");
        // Gathering the positions from the held matrix is gathering the
        // columns from the full one.
        let full: Vec<f32> = (0..3 * 25).map(|v| v as f32).collect();
        let held_matrix = held.gather(&full, 25);
        let wanted = Columns::List(vec![18, 11, 12]);
        let positions = wanted.positions_in(&held).unwrap();
        assert_eq!(positions.gather(&held_matrix, 10), wanted.gather(&full, 25));
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
