//! One-vs-rest linear SVM trained with Pegasos (Shalev-Shwartz et al. 2007):
//! stochastic sub-gradient steps on the L2-regularised hinge loss with step
//! 1/(lambda t), lambda = 1/(C n). The bias is an extra constant feature
//! (regularised with the weights). Classes train in parallel; each has its
//! own seeded stream, so the result does not depend on the thread count.

use rayon::prelude::*;

use crate::probe::SplitMix64;

pub(super) struct LinearSvm {
    /// `[num_classes, features + 1]`, the last column the bias.
    weights: Vec<f64>,
    features: usize,
    num_classes: usize,
}

impl LinearSvm {
    pub(super) fn fit(
        x: &[f64],
        y: &[u32],
        features: usize,
        num_classes: usize,
        c: f64,
        epochs: usize,
        seed: u64,
    ) -> Self {
        let rows = y.len();
        let lambda = 1.0 / (c * rows as f64);
        let width = features + 1;
        let weights: Vec<f64> = (0..num_classes)
            .into_par_iter()
            .flat_map_iter(|class| {
                let mut rng = SplitMix64::for_stream(seed, 0x5F3A_0000 + class as u64);
                // w = scale * v keeps the shrink step O(1).
                let mut v = vec![0.0f64; width];
                let mut scale = 1.0f64;
                let mut order: Vec<usize> = (0..rows).collect();
                let mut t = 0usize;
                for _ in 0..epochs {
                    rng.shuffle(&mut order);
                    for &r in &order {
                        t += 1;
                        let eta = 1.0 / (lambda * t as f64);
                        let row = &x[r * features..(r + 1) * features];
                        let target = if y[r] as usize == class { 1.0 } else { -1.0 };
                        let margin = target * scale * (dot(&v[..features], row) + v[features]);
                        let shrink = 1.0 - eta * lambda;
                        if shrink <= 0.0 {
                            v.iter_mut().for_each(|w| *w = 0.0);
                            scale = 1.0;
                        } else {
                            scale *= shrink;
                        }
                        if margin < 1.0 {
                            let step = eta * target / scale;
                            for (w, &xv) in v[..features].iter_mut().zip(row) {
                                *w += step * xv;
                            }
                            v[features] += step;
                        }
                        if scale < 1e-9 {
                            v.iter_mut().for_each(|w| *w *= scale);
                            scale = 1.0;
                        }
                    }
                }
                v.into_iter().map(move |w| w * scale)
            })
            .collect();
        Self {
            weights,
            features,
            num_classes,
        }
    }

    pub(super) fn predict(&self, x: &[f64]) -> Vec<u32> {
        let width = self.features + 1;
        x.par_chunks_exact(self.features)
            .map(|row| {
                let mut best = (f64::NEG_INFINITY, 0u32);
                for c in 0..self.num_classes {
                    let w = &self.weights[c * width..(c + 1) * width];
                    let s = dot(&w[..self.features], row) + w[self.features];
                    if s > best.0 {
                        best = (s, c as u32);
                    }
                }
                best.1
            })
            .collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f64 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}
