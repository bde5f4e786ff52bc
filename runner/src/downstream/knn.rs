//! Brute-force k nearest neighbours (Euclidean), parallel over query rows.
//!
//! Ours rather than smartcore's KNNClassifier: smartcore keeps rows as
//! `Vec<Vec<T>>`, computes every distance through a generic trait with a
//! square root and runs single-threaded; this loop uses |q|^2 - 2 q.t + |t|^2
//! with precomputed norms, f32 dot products the compiler vectorises, and
//! rayon over the queries.

use rayon::prelude::*;

pub(super) const IMPLEMENTATION: &str = "ours: brute-force kNN (rayon)";

pub(super) struct Knn {
    train: Vec<f32>,
    norms: Vec<f32>,
    labels: Vec<u32>,
    features: usize,
    num_classes: usize,
    k: usize,
}

impl Knn {
    pub(super) fn new(
        train: &[f64],
        labels: &[u32],
        features: usize,
        num_classes: usize,
        k: usize,
    ) -> Self {
        let train: Vec<f32> = train.iter().map(|&v| v as f32).collect();
        let norms = train
            .chunks_exact(features)
            .map(|row| dot(row, row))
            .collect();
        Self {
            train,
            norms,
            labels: labels.to_vec(),
            features,
            num_classes,
            k: k.min(labels.len()).max(1),
        }
    }

    pub(super) fn predict(&self, queries: &[f64]) -> Vec<u32> {
        let queries: Vec<f32> = queries.iter().map(|&v| v as f32).collect();
        queries
            .par_chunks_exact(self.features)
            .map(|q| self.predict_one(q))
            .collect()
    }

    fn predict_one(&self, q: &[f32]) -> u32 {
        let qn = dot(q, q);
        // The k best (distance, index), ascending by distance then index.
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(self.k + 1);
        for (i, (row, &tn)) in self
            .train
            .chunks_exact(self.features)
            .zip(&self.norms)
            .enumerate()
        {
            let d = (qn - 2.0 * dot(q, row) + tn).max(0.0);
            if best.len() == self.k && d >= best[self.k - 1].0 {
                continue;
            }
            let at = best.partition_point(|&(bd, _)| bd <= d);
            best.insert(at, (d, i));
            best.truncate(self.k);
        }
        // Majority vote; a tie goes to the class whose neighbour is nearest.
        let mut votes = vec![0usize; self.num_classes];
        for &(_, i) in &best {
            votes[self.labels[i] as usize] += 1;
        }
        let top = votes.iter().copied().max().unwrap_or(0);
        best.iter()
            .map(|&(_, i)| self.labels[i])
            .find(|&c| votes[c as usize] == top)
            .unwrap_or(0)
    }
}

/// Dot product with eight independent accumulators (vectorises well).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}
