//! The per-class Gaussians over the selected columns, grown one column at a
//! time by extending each class's Cholesky factor (no refitting).
//!
//! With `L_c` the Cholesky factor of class `c`'s covariance over the
//! selected set `S` (`L_c L_c^T = Sigma_c[S,S]`), the model keeps, per class:
//! - `w_c = L_c^{-1} Sigma_c[S, :]` (`k x cols`): each column's covariance
//!   with `S`, whitened;
//! - `cv_c[j] = Sigma_c[j,j] - |w_c[:,j]|^2`: the variance of column `j`
//!   given `S` (its Schur complement);
//! - `z_c[i] = L_c^{-1} (x_i[S] - mean_c[S])` for **every** row `i`;
//! - `base_c[i] = ln prior_c - sum_t ln L_c[t,t] - |z_c[i]|^2 / 2`: the log
//!   joint density of row `i` and class `c` over `S`, less the `ln 2 pi`
//!   terms that every class shares.
//!
//! Adding column `s` appends row `(Sigma_c[s,:] - l^T w_c) / d` to `w_c`,
//! with `l = w_c[:, s]` and `d = sqrt(cv_c[s])`, the new Cholesky row
//! `[l^T, d]`; a candidate `j` is scored with the same algebra without being
//! added (kernel.rs).

use rayon::prelude::*;

/// Added to every class covariance's diagonal (in standardised units): the
/// floor of every conditional variance, so near-duplicate columns stay
/// finite. Columns equal in every class get the same floor in every class,
/// so they carry no information.
pub(crate) const RIDGE: f64 = 1e-4;

/// One class's Gaussian over the selected columns (see the module docs).
pub(crate) struct ClassModel {
    /// This class's rows (indices into the standardised rows).
    rows: Vec<usize>,
    /// Rows of this class plus the prior's pseudo-rows.
    weight: f64,
    pub mean: Vec<f32>,
    /// `budget x cols`, the first `k` rows in use.
    pub w: Vec<f32>,
    /// `rows x budget` for all rows, the first `k` columns in use.
    pub z: Vec<f32>,
    base_exact: Vec<f64>,
    pub base: Vec<f32>,
    cv: Vec<f64>,
    pub half_log_cv: Vec<f32>,
    pub inv_cv: Vec<f32>,
}

/// Standardised rows (row-major, `cols` wide) with dense class indices.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub x: &'a [f32],
    pub labels: &'a [u32],
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

/// The greedy state: the rows the Gaussians are fitted on, the rows they
/// are scored on (the same rows, or others), class models, selected
/// columns.
pub(crate) struct Model<'a> {
    fit: Rows<'a>,
    pub scored: Rows<'a>,
    pub cols: usize,
    pub budget: usize,
    prior: f64,
    pub classes: Vec<ClassModel>,
    pub selected: Vec<usize>,
}

impl<'a> Model<'a> {
    /// Class models with nothing selected. Labels are dense class indices
    /// `0..classes`, every class with at least one `fit` row.
    pub fn new(
        fit: Rows<'a>,
        scored: Rows<'a>,
        cols: usize,
        classes: usize,
        budget: usize,
        prior: f64,
    ) -> Self {
        let (x, rows) = (fit.x, fit.len());
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &label) in fit.labels.iter().enumerate() {
            members[label as usize].push(i);
        }
        // Per-class means and the diagonal of each class's scatter matrix.
        let stats: Vec<(Vec<f64>, Vec<f64>)> = members
            .par_iter()
            .map(|rows_c| {
                let mut mean = vec![0.0f64; cols];
                for &i in rows_c {
                    for (m, &v) in mean.iter_mut().zip(&x[i * cols..(i + 1) * cols]) {
                        *m += f64::from(v);
                    }
                }
                mean.iter_mut().for_each(|m| *m /= rows_c.len() as f64);
                let mut scatter = vec![0.0f64; cols];
                for &i in rows_c {
                    let row = &x[i * cols..(i + 1) * cols];
                    for ((s, &v), &m) in scatter.iter_mut().zip(row).zip(&mean) {
                        let d = f64::from(v) - m;
                        *s += d * d;
                    }
                }
                (mean, scatter)
            })
            .collect();
        let pooled = pooled_row(stats.iter().map(|(_, s)| s.as_slice()), cols, rows);
        let model_classes = members
            .into_iter()
            .zip(stats)
            .map(|(rows_c, (mean, scatter))| {
                let weight = rows_c.len() as f64 + prior;
                let cv: Vec<f64> = scatter
                    .iter()
                    .zip(&pooled)
                    .map(|(&s, &t)| (s + prior * t) / weight + RIDGE)
                    .collect();
                let log_prior = (rows_c.len() as f64 / rows as f64).ln();
                let mut model = ClassModel {
                    rows: rows_c,
                    weight,
                    mean: mean.iter().map(|&m| m as f32).collect(),
                    w: vec![0.0; budget * cols],
                    z: vec![0.0; scored.len() * budget],
                    base_exact: vec![log_prior; scored.len()],
                    base: vec![log_prior as f32; scored.len()],
                    cv,
                    half_log_cv: Vec::new(),
                    inv_cv: Vec::new(),
                };
                model.refresh_candidates();
                model
            })
            .collect();
        Model {
            fit,
            scored,
            cols,
            budget,
            prior,
            classes: model_classes,
            selected: Vec::new(),
        }
    }

    /// Adds column `s` to the selected set (at most `budget` times).
    pub fn add(&mut self, s: usize) {
        let (x, rows, cols, k) = (self.fit.x, self.fit.len(), self.cols, self.selected.len());
        assert!(k < self.budget, "more columns than the budget");
        // Row s of every class's scatter matrix, then of the pooled one.
        let scatter_rows: Vec<Vec<f64>> = self
            .classes
            .par_iter()
            .map(|model| {
                let mut acc = vec![0.0f64; cols];
                let mean_s = f64::from(model.mean[s]);
                for &i in &model.rows {
                    let row = &x[i * cols..(i + 1) * cols];
                    let d = f64::from(row[s]) - mean_s;
                    // The class's deviations sum to zero, so the raw row
                    // can stand in for the centred one.
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += d * f64::from(v);
                    }
                }
                acc
            })
            .collect();
        let pooled = pooled_row(scatter_rows.iter().map(Vec::as_slice), cols, rows);
        let (prior, scored) = (self.prior, self.scored);
        self.classes
            .par_iter_mut()
            .zip(scatter_rows)
            .for_each(|(model, scatter)| {
                let sigma: Vec<f64> = scatter
                    .iter()
                    .zip(&pooled)
                    .enumerate()
                    .map(|(j, (&sc, &t))| {
                        (sc + prior * t) / model.weight + if j == s { RIDGE } else { 0.0 }
                    })
                    .collect();
                model.extend(scored.x, cols, k, s, &sigma);
            });
        self.selected.push(s);
    }
}

/// `sum_c scatter_c / rows`: the pooled within-class covariance (one row or
/// the diagonal, whatever the slices hold).
fn pooled_row<'s>(scatters: impl Iterator<Item = &'s [f64]>, cols: usize, rows: usize) -> Vec<f64> {
    let mut pooled = vec![0.0f64; cols];
    for scatter in scatters {
        for (p, &v) in pooled.iter_mut().zip(scatter) {
            *p += v;
        }
    }
    pooled.iter_mut().for_each(|p| *p /= rows as f64);
    pooled
}

impl ClassModel {
    /// Appends column `s` as selected column number `k`, given row `s` of
    /// this class's covariance (`sigma`); `x` holds the scored rows.
    fn extend(&mut self, x: &[f32], cols: usize, k: usize, s: usize, sigma: &[f64]) {
        let rows = self.base.len();
        let budget = self.z.len() / rows.max(1);
        let l: Vec<f64> = (0..k).map(|t| f64::from(self.w[t * cols + s])).collect();
        let d2 = self.cv[s].max(RIDGE);
        let d = d2.sqrt();
        let mut new_row = sigma.to_vec();
        for (t, &lt) in l.iter().enumerate() {
            for (v, &wt) in new_row.iter_mut().zip(&self.w[t * cols..(t + 1) * cols]) {
                *v -= lt * f64::from(wt);
            }
        }
        let w_new = &mut self.w[k * cols..(k + 1) * cols];
        for ((slot, v), cv) in w_new.iter_mut().zip(&mut new_row).zip(&mut self.cv) {
            *v /= d;
            *slot = *v as f32;
            *cv = (*cv - *v * *v).max(RIDGE);
        }
        let mean_s = f64::from(self.mean[s]);
        let log_d = d.ln();
        for i in 0..rows {
            let z = &mut self.z[i * budget..(i + 1) * budget];
            let proj: f64 = l.iter().zip(&z[..k]).map(|(&a, &b)| a * f64::from(b)).sum();
            let z_new = (f64::from(x[i * cols + s]) - mean_s - proj) / d;
            z[k] = z_new as f32;
            self.base_exact[i] -= log_d + 0.5 * z_new * z_new;
            self.base[i] = self.base_exact[i] as f32;
        }
        self.refresh_candidates();
    }

    /// The kernel's per-column terms from the conditional variances.
    fn refresh_candidates(&mut self) {
        self.half_log_cv = self.cv.iter().map(|&v| (0.5 * v.ln()) as f32).collect();
        self.inv_cv = self.cv.iter().map(|&v| (1.0 / v) as f32).collect();
    }
}

impl Model<'_> {
    /// `sum_i ln p(y_i | x_i[S])` over the scored rows for the selected set
    /// `S` (0 for one class).
    pub fn objective(&self) -> f64 {
        (0..self.scored.len())
            .map(|i| {
                let a: Vec<f64> = self.classes.iter().map(|m| m.base_exact[i]).collect();
                let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + a.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                a[self.scored.labels[i] as usize] - lse
            })
            .sum()
    }
}
