//! Input checks, seeded subsampling and standardisation.

use anyhow::bail;

use crate::probe::SplitMix64;

/// Standardised rows (row-major f64).
pub type Standardized = Vec<f64>;

/// Check one split's shape and labels; returns its row count. With
/// `num_classes` given, every label must be below it (the training split);
/// dev and test may hold labels of classes unseen in training (index
/// `>= num_classes`, as the store writes them), which always count as wrong.
pub(super) fn check_split(
    name: &str,
    (x, y): (&[f32], &[u32]),
    features: usize,
    num_classes: Option<usize>,
) -> anyhow::Result<usize> {
    if x.len() % features != 0 {
        bail!(
            "{name}: {} values are not a whole number of rows of {features} features",
            x.len()
        );
    }
    let rows = x.len() / features;
    if rows != y.len() {
        bail!("{name}: {rows} rows but {} labels", y.len());
    }
    if let Some(num_classes) = num_classes {
        if let Some(bad) = y.iter().find(|&&l| l as usize >= num_classes) {
            bail!("{name}: label {bad} is not below num_classes {num_classes}");
        }
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "{name}: non-finite value at row {}, feature {}",
            i / features,
            i % features
        );
    }
    Ok(rows)
}

/// The training rows, or a seeded subsample of `max_rows` of them (kept in
/// their original order).
pub(super) fn subsample(
    (x, y): (&[f32], &[u32]),
    features: usize,
    max_rows: usize,
    seed: u64,
) -> (Vec<f32>, Vec<u32>) {
    let rows = y.len();
    if max_rows == 0 || rows <= max_rows {
        return (x.to_vec(), y.to_vec());
    }
    let mut rng = SplitMix64::for_stream(seed, 0x5EB5_A11E);
    let mut order: Vec<usize> = (0..rows).collect();
    // Partial Fisher-Yates: the first max_rows entries are a uniform sample.
    for i in 0..max_rows {
        let j = i + rng.below(rows - i);
        order.swap(i, j);
    }
    let mut keep = order[..max_rows].to_vec();
    keep.sort_unstable();
    let mut sx = Vec::with_capacity(max_rows * features);
    let mut sy = Vec::with_capacity(max_rows);
    for r in keep {
        sx.extend_from_slice(&x[r * features..(r + 1) * features]);
        sy.push(y[r]);
    }
    (sx, sy)
}

/// Per-feature mean and standard deviation of the training rows.
pub(super) struct Scaler {
    mean: Vec<f64>,
    /// 1/std, or 0 where the std is 0 (such a feature becomes all zeros).
    inv_std: Vec<f64>,
}

impl Scaler {
    pub(super) fn fit(x: &[f32], features: usize) -> Self {
        let rows = x.len() / features;
        let mut mean = vec![0.0f64; features];
        for row in x.chunks_exact(features) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        let n = rows.max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; features];
        for row in x.chunks_exact(features) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                let d = v as f64 - m;
                *s += d * d;
            }
        }
        let inv_std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 {
                    1.0 / sd
                } else {
                    0.0
                }
            })
            .collect();
        Self { mean, inv_std }
    }

    pub(super) fn apply(&self, x: &[f32]) -> Standardized {
        let features = self.mean.len();
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(features) {
            for ((&v, m), s) in row.iter().zip(&self.mean).zip(&self.inv_std) {
                out.push((v as f64 - m) * s);
            }
        }
        out
    }
}
