//! The condensed (upper-triangle) distance matrix, SciPy's `pdist` layout.

/// Pairwise distances between `n` items, stored as the strict upper triangle
/// row by row: `(0,1), (0,2), .., (0,n-1), (1,2), ..`. This is the layout
/// `scipy.spatial.distance.squareform` produces and `kodama::linkage` takes,
/// and it needs half the memory of a square matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Condensed {
    n: usize,
    data: Vec<f64>,
}

impl Condensed {
    /// All distances set to `fill`.
    pub fn filled(n: usize, fill: f64) -> Self {
        Condensed {
            n,
            data: vec![fill; n * n.saturating_sub(1) / 2],
        }
    }

    /// Wraps distances already in condensed order; `None` if the length is
    /// not `n (n - 1) / 2`.
    pub fn from_vec(n: usize, data: Vec<f64>) -> Option<Self> {
        (data.len() == n * n.saturating_sub(1) / 2).then_some(Condensed { n, data })
    }

    /// Number of items (not of distances).
    pub fn items(&self) -> usize {
        self.n
    }

    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The mutable storage; `kodama::linkage` overwrites it while it works.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Distance between items `i` and `j` (`i != j`, either order).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[self.index(i, j)]
    }

    /// Position of the pair in the storage.
    pub fn index(&self, i: usize, j: usize) -> usize {
        debug_assert!(i != j && i < self.n && j < self.n);
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        self.row_start(i) + (j - i - 1)
    }

    /// Position of pair `(i, i + 1)`: row `i` of the triangle starts there
    /// and continues contiguously up to `(i, n - 1)`.
    pub fn row_start(&self, i: usize) -> usize {
        i * self.n - i * (i + 1) / 2
    }

    /// Row `i` of the triangle: distances `(i, i+1) .. (i, n-1)`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        let start = self.row_start(i);
        let len = self.n - i - 1;
        &mut self.data[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_scipy_squareform() {
        // squareform([[0,1,2,3],[1,0,4,5],[2,4,0,6],[3,5,6,0]]) == [1,2,3,4,5,6]
        let c = Condensed::from_vec(4, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(c.get(0, 1), 1.0);
        assert_eq!(c.get(3, 0), 3.0);
        assert_eq!(c.get(1, 2), 4.0);
        assert_eq!(c.get(2, 3), 6.0);
        assert!(Condensed::from_vec(4, vec![0.0; 5]).is_none());
        assert_eq!(Condensed::filled(1, 1.0).as_slice().len(), 0);
    }
}
