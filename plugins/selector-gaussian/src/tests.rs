//! The incremental model and the kernel against a from-scratch computation:
//! explicit covariance matrices, a fresh Cholesky factor per class and
//! candidate, log-sum-exp in f64.

use sieve_core::MatrixView;

use crate::kernel::{candidate_objectives, Step};
use crate::model::{Model, Rows, RIDGE};
use crate::Standardiser;

/// `sum_i ln p(y_i | x_i[set])` over the `scored` rows, for Gaussians
/// fitted on the `fit` rows, computed directly from the definitions.
fn naive_objective(
    fit: Rows<'_>,
    scored: Rows<'_>,
    cols: usize,
    classes: usize,
    prior: f64,
    set: &[usize],
) -> f64 {
    let (z, y) = (fit.x, fit.labels);
    let n = y.len();
    let k = set.len();
    let at = |i: usize, a: usize| f64::from(z[i * cols + set[a]]);
    let mut counts = vec![0usize; classes];
    let mut means = vec![vec![0.0; k]; classes];
    for (i, &label) in y.iter().enumerate() {
        let c = label as usize;
        counts[c] += 1;
        for (a, m) in means[c].iter_mut().enumerate() {
            *m += at(i, a);
        }
    }
    for c in 0..classes {
        means[c].iter_mut().for_each(|m| *m /= counts[c] as f64);
    }
    let mut scatter = vec![vec![0.0; k * k]; classes];
    for (i, &label) in y.iter().enumerate() {
        let c = label as usize;
        for a in 0..k {
            for b in 0..k {
                scatter[c][a * k + b] += (at(i, a) - means[c][a]) * (at(i, b) - means[c][b]);
            }
        }
    }
    let pooled: Vec<f64> = (0..k * k)
        .map(|e| scatter.iter().map(|s| s[e]).sum::<f64>() / n as f64)
        .collect();
    let mut total = 0.0;
    // Cholesky factor and log-determinant of every class covariance.
    let factors: Vec<(Vec<f64>, f64)> = (0..classes)
        .map(|c| {
            let w = counts[c] as f64 + prior;
            let sigma: Vec<f64> = (0..k * k)
                .map(|e| {
                    (scatter[c][e] + prior * pooled[e]) / w
                        + if e % (k + 1) == 0 { RIDGE } else { 0.0 }
                })
                .collect();
            let mut l = vec![0.0; k * k];
            for a in 0..k {
                for b in 0..=a {
                    let s: f64 = (0..b).map(|t| l[a * k + t] * l[b * k + t]).sum();
                    if a == b {
                        l[a * k + a] = (sigma[a * k + a] - s).sqrt();
                    } else {
                        l[a * k + b] = (sigma[a * k + b] - s) / l[b * k + b];
                    }
                }
            }
            let log_det: f64 = (0..k).map(|a| 2.0 * l[a * k + a].ln()).sum();
            (l, log_det)
        })
        .collect();
    let at = |i: usize, a: usize| f64::from(scored.x[i * cols + set[a]]);
    for i in 0..scored.len() {
        let scores: Vec<f64> = (0..classes)
            .map(|c| {
                let (l, log_det) = &factors[c];
                let mut v = vec![0.0; k];
                for a in 0..k {
                    let s: f64 = (0..a).map(|t| l[a * k + t] * v[t]).sum();
                    v[a] = (at(i, a) - means[c][a] - s) / l[a * k + a];
                }
                let q: f64 = v.iter().map(|x| x * x).sum();
                (counts[c] as f64 / n as f64).ln() - 0.5 * log_det - 0.5 * q
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln();
        total += scores[scored.labels[i] as usize] - lse;
    }
    total
}

#[test]
fn incremental_model_and_kernel_match_the_definitions() {
    // Scored on the fitted rows, then on other rows.
    check_against_definitions(150, 0);
    check_against_definitions(150, 60);
}

fn check_against_definitions(fit_rows: usize, other_rows: usize) {
    let (rows, cols, classes, prior) = (fit_rows + other_rows, 7usize, 3usize, 2.0);
    let mut state = 17u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let y: Vec<u32> = (0..rows).map(|i| (i % classes) as u32).collect();
    let mut x = Vec::with_capacity(rows * cols);
    for &c in &y {
        let shared = uniform();
        let c = c as f32;
        x.extend([
            uniform() + 0.3 * c,
            shared + uniform() * 0.5,
            shared * 2.0 + 0.2 * c + uniform() * 0.3,
            uniform() * (1.0 + c),
            0.5 * uniform() - 0.4 * c * c,
            uniform(),
            3.0,
        ]);
    }
    let view = MatrixView::new(&x, rows, cols).unwrap();
    let kept: Vec<usize> = (0..fit_rows).collect();
    let scale = Standardiser::fit(&view, &kept);
    let z = scale.apply(&view, &kept);
    let fit = Rows {
        x: &z,
        labels: &y[..fit_rows],
    };
    let others: Vec<usize> = (fit_rows..rows).collect();
    let z_other = scale.apply(&view, &others);
    let scored = if other_rows == 0 {
        fit
    } else {
        Rows {
            x: &z_other,
            labels: &y[fit_rows..],
        }
    };
    let budget = 3;
    let mut model = Model::new(fit, scored, cols, classes, budget, prior);
    let mut set: Vec<usize> = Vec::new();
    for pick in [2usize, 4, 0] {
        let objectives = candidate_objectives(&Step {
            x: scored.x,
            rows: scored.len(),
            cols,
            labels: scored.labels,
            classes: &model.classes,
            k: set.len(),
            budget,
        });
        for j in (0..cols).filter(|j| !set.contains(j)) {
            let mut with = set.clone();
            with.push(j);
            let exact = naive_objective(fit, scored, cols, classes, prior, &with);
            assert!(
                (objectives[j] - exact).abs() < 1e-3 * (1.0 + exact.abs()),
                "set {with:?}: kernel {} vs exact {exact}",
                objectives[j]
            );
        }
        model.add(pick);
        set.push(pick);
        let exact = naive_objective(fit, scored, cols, classes, prior, &set);
        assert!(
            (model.objective() - exact).abs() < 1e-6 * (1.0 + exact.abs()),
            "set {set:?}: model {} vs exact {exact}",
            model.objective()
        );
    }
}
