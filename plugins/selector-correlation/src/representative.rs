//! Choosing the one neuron that stands for each cluster.

use std::{fmt, str::FromStr};

use crate::condensed::Condensed;

/// How a cluster's representative is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representative {
    /// Uniformly at random, as the paper's code does, but seeded.
    Random,
    /// The member with the highest mean |r| to its cluster mates (ties: the
    /// lowest index): the neuron the others are most redundant with.
    Medoid,
    /// The lowest column index (usually the lowest layer).
    First,
}

impl Representative {
    pub fn as_str(self) -> &'static str {
        match self {
            Representative::Random => "random",
            Representative::Medoid => "medoid",
            Representative::First => "first",
        }
    }
}

impl fmt::Display for Representative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Representative {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "random" => Ok(Representative::Random),
            "medoid" => Ok(Representative::Medoid),
            "first" => Ok(Representative::First),
            other => Err(format!(
                "unknown representative '{other}'; expected random, medoid or first"
            )),
        }
    }
}

/// One member per cluster, drawn uniformly with a generator seeded by
/// `seed`. Clusters are visited in the order given and singletons draw
/// nothing, so the choice in a cluster depends only on the seed and on the
/// multi-member clusters before it.
pub fn random_representatives(clusters: &[Vec<u32>], seed: u64) -> Vec<u32> {
    // Mixed with a constant so this stream differs from other plugins'
    // streams derived from the same spec seed.
    let mut rng = SplitMix64(seed ^ 0x636f_7272_656c_6174);
    clusters
        .iter()
        .map(|members| match members.len() {
            1 => members[0],
            len => members[rng.below(len as u64) as usize],
        })
        .collect()
}

/// The lowest member of each cluster.
pub fn first_representatives(clusters: &[Vec<u32>]) -> Vec<u32> {
    clusters.iter().map(|members| members[0]).collect()
}

/// The member of each cluster with the smallest mean distance `1 - |r|` to
/// its mates, i.e. the highest mean |r|; means within 1e-6 count as a tie,
/// won by the lowest index (members must index `distances`).
pub fn medoid_representatives(clusters: &[Vec<u32>], distances: &Condensed) -> Vec<u32> {
    clusters
        .iter()
        .map(|members| medoid(members, distances))
        .collect()
}

/// Mean distances closer than this are a tie: the correlations come from an
/// f32 product and are good to about 1e-6, so a smaller lead is noise.
const MEDOID_TIE: f64 = 1e-6;

fn medoid(members: &[u32], distances: &Condensed) -> u32 {
    let mates = members.len().saturating_sub(1).max(1) as f64;
    let mut best = (f64::INFINITY, members[0]);
    for &a in members {
        let total: f64 = members
            .iter()
            .filter(|&&b| b != a)
            .map(|&b| distances.get(a as usize, b as usize))
            .sum();
        let mean = total / mates;
        // Only a clear lead replaces the earlier (lower) index.
        if mean < best.0 - MEDOID_TIE {
            best = (mean, a);
        }
    }
    best.1
}

/// SplitMix64 (Steele et al. 2014): tiny, fast, and fixed here so the
/// representatives of a seed never change with a dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (rejection).
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next();
            if v < zone {
                return v % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medoid_prefers_the_most_central_member_and_the_lowest_on_ties() {
        // Items 0..4; 1 is close to everyone, 0 and 2 are far apart.
        let mut d = Condensed::filled(4, 1.0);
        let set = |d: &mut Condensed, i, j, v| {
            let k = d.index(i, j);
            d.as_mut_slice()[k] = v;
        };
        set(&mut d, 0, 1, 0.1);
        set(&mut d, 1, 2, 0.1);
        set(&mut d, 0, 2, 0.5);
        assert_eq!(medoid(&[0, 1, 2], &d), 1);
        assert_eq!(medoid(&[0, 2], &d), 0);
        assert_eq!(medoid(&[3], &d), 3);
    }

    #[test]
    fn random_draws_are_members_and_cover_the_cluster() {
        let clusters = vec![vec![2, 5, 9], vec![4]];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let reps = random_representatives(&clusters, seed);
            assert!(clusters[0].contains(&reps[0]));
            assert_eq!(reps[1], 4);
            seen.insert(reps[0]);
        }
        assert_eq!(seen.len(), 3);
    }
}
