//! Agglomerative clustering (kodama) and SciPy's flat cut by distance.

use std::{fmt, str::FromStr};

use crate::condensed::Condensed;

/// How the distance between two clusters follows from their members'.
///
/// Ward, centroid and median linkage are refused: their Lance-Williams
/// updates assume Euclidean distances between points, and `1 - |r|` is not
/// one, so their merge heights would mean nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linkage {
    Single,
    Complete,
    /// UPGMA, the paper's choice.
    Average,
    /// WPGMA.
    Weighted,
}

impl Linkage {
    pub fn as_str(self) -> &'static str {
        match self {
            Linkage::Single => "single",
            Linkage::Complete => "complete",
            Linkage::Average => "average",
            Linkage::Weighted => "weighted",
        }
    }

    fn kodama(self) -> kodama::Method {
        match self {
            Linkage::Single => kodama::Method::Single,
            Linkage::Complete => kodama::Method::Complete,
            Linkage::Average => kodama::Method::Average,
            Linkage::Weighted => kodama::Method::Weighted,
        }
    }
}

impl fmt::Display for Linkage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Linkage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(Linkage::Single),
            "complete" => Ok(Linkage::Complete),
            "average" => Ok(Linkage::Average),
            "weighted" => Ok(Linkage::Weighted),
            "ward" | "centroid" | "median" => Err(format!(
                "linkage '{s}' needs Euclidean distances between points, and the \
                 correlation distance 1-|r| is not one; use average, single, \
                 complete or weighted"
            )),
            other => Err(format!(
                "unknown linkage '{other}'; expected average, single, complete or weighted"
            )),
        }
    }
}

/// One merge of the dendrogram, labelled as SciPy labels its linkage matrix:
/// items are `0..n`, the cluster made by merge `i` is `n + i`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Merge {
    pub left: usize,
    pub right: usize,
    pub height: f64,
    /// Number of items in the merged cluster.
    pub size: usize,
}

/// Hierarchical clustering of the `distances.items()` items. kodama uses
/// the distances as scratch space, hence `&mut`.
pub fn linkage(distances: &mut Condensed, method: Linkage) -> Vec<Merge> {
    let n = distances.items();
    if n < 2 {
        return Vec::new();
    }
    let dendrogram = kodama::linkage(distances.as_mut_slice(), n, method.kodama());
    dendrogram
        .steps()
        .iter()
        .map(|s| Merge {
            left: s.cluster1,
            right: s.cluster2,
            height: s.dissimilarity,
            size: s.size,
        })
        .collect()
}

/// Flat clusters of the `n` items, as `scipy.cluster.hierarchy.fcluster(Z,
/// t, criterion="distance")`: a subtree is one cluster when no merge inside
/// it is higher than `threshold`. Labels are `0..k`, numbered in order of
/// each cluster's lowest item (SciPy numbers them differently; only the
/// partition is the same).
pub fn flat_clusters(merges: &[Merge], n: usize, threshold: f64) -> Vec<u32> {
    let mut sets = DisjointSets::new(n + merges.len());
    // SciPy compares the highest merge in the subtree, not the merge's own
    // height, so a non-monotone dendrogram is cut the same way.
    let mut subtree_max = vec![f64::NEG_INFINITY; n + merges.len()];
    for (i, m) in merges.iter().enumerate() {
        let node = n + i;
        subtree_max[node] = m.height.max(subtree_max[m.left]).max(subtree_max[m.right]);
        if subtree_max[node] <= threshold {
            sets.union(m.left, node);
            sets.union(m.right, node);
        }
    }
    let mut label_of_root = vec![u32::MAX; n + merges.len()];
    let mut next = 0u32;
    (0..n)
        .map(|item| {
            let root = sets.find(item);
            if label_of_root[root] == u32::MAX {
                label_of_root[root] = next;
                next += 1;
            }
            label_of_root[root]
        })
        .collect()
}

/// Members of each cluster, ascending, clusters in label order.
pub fn members_by_label(labels: &[u32]) -> Vec<Vec<u32>> {
    let count = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut clusters = vec![Vec::new(); count];
    for (item, &label) in labels.iter().enumerate() {
        clusters[label as usize].push(item as u32);
    }
    clusters
}

/// Union-find with path halving; merges are few (n - 1), ranks unneeded.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four points on a line at 0, 1, 5, 6 (distances |a - b|).
    fn line() -> Condensed {
        let p = [0.0, 1.0, 5.0, 6.0];
        let mut d = Vec::new();
        for i in 0..4 {
            for j in i + 1..4 {
                d.push(f64::abs(p[i] - p[j]));
            }
        }
        Condensed::from_vec(4, d).unwrap()
    }

    #[test]
    fn average_linkage_heights_and_cut() {
        let merges = linkage(&mut line(), Linkage::Average);
        let heights: Vec<f64> = merges.iter().map(|m| m.height).collect();
        // {0,1} at 1, {2,3} at 1, then mean of 5,6,4,5 = 5.
        assert_eq!(heights, vec![1.0, 1.0, 5.0]);
        assert_eq!(flat_clusters(&merges, 4, 0.5), vec![0, 1, 2, 3]);
        assert_eq!(flat_clusters(&merges, 4, 1.0), vec![0, 0, 1, 1]);
        assert_eq!(flat_clusters(&merges, 4, 4.99), vec![0, 0, 1, 1]);
        assert_eq!(flat_clusters(&merges, 4, 5.0), vec![0, 0, 0, 0]);
    }

    #[test]
    fn cut_uses_the_highest_merge_below_a_node() {
        // A non-monotone dendrogram: the root is lower than its child.
        let merges = [
            Merge {
                left: 0,
                right: 1,
                height: 2.0,
                size: 2,
            },
            Merge {
                left: 2,
                right: 3,
                height: 1.0,
                size: 3,
            },
        ];
        assert_eq!(flat_clusters(&merges, 3, 1.5), vec![0, 1, 2]);
        assert_eq!(flat_clusters(&merges, 3, 2.0), vec![0, 0, 0]);
    }

    #[test]
    fn euclidean_only_linkages_are_refused() {
        assert_eq!("weighted".parse::<Linkage>(), Ok(Linkage::Weighted));
        let err = "ward".parse::<Linkage>().unwrap_err();
        assert!(err.contains("Euclidean"), "{err}");
        assert!("avg"
            .parse::<Linkage>()
            .unwrap_err()
            .contains("unknown linkage"));
    }

    #[test]
    fn tiny_inputs() {
        assert!(linkage(&mut Condensed::filled(1, 1.0), Linkage::Average).is_empty());
        assert_eq!(flat_clusters(&[], 1, 0.3), vec![0]);
        assert_eq!(members_by_label(&[1, 0, 1]), vec![vec![1], vec![0, 2]]);
    }
}
