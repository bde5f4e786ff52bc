//! A seeded generator for plugins: SplitMix64 (Steele, Lea & Flood 2014).
//!
//! Small, fast, good enough to shuffle and subsample, and defined here
//! rather than taken from `rand`, so a seed means the same sequence in
//! every version: a selection that depends on a seed stays reproducible.

/// SplitMix64: one 64-bit state, full period.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// An independent generator for purpose `stream` of run seed `seed`.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut mix = SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        SplitMix64(mix.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound >= 1`), by rejection (no modulo bias).
    pub fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % bound;
            }
        }
    }

    /// `k` of `0..n` drawn without replacement (all of them when `k >= n`),
    /// in ascending order: a partial Fisher-Yates shuffle.
    pub fn sample_sorted(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        if k >= n {
            return all;
        }
        for i in 0..k {
            let j = i + self.below((n - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // Vigna's splitmix64.c from state 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn samples_are_sorted_distinct_and_in_range() {
        let mut rng = SplitMix64::for_stream(7, 1);
        let s = rng.sample_sorted(100, 10);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[9] < 100);
        assert_eq!(rng.sample_sorted(3, 5), vec![0, 1, 2]);
        assert!((0..1000).all(|_| rng.below(3) < 3));
    }
}
