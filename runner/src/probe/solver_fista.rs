//! Full-batch FISTA (Beck & Teboulle 2009) for the proper elastic net:
//! minimise `mean loss + (l2/2) ||W||_F^2 + l1 * sum|W|`.
//!
//! Differences from the paper's Adam objective, on purpose: the L2 term is
//! squared (smooth, so it belongs in the gradient step; the paper's
//! unsquared norm is not differentiable at 0 and its weight is not
//! comparable), and L1 is handled by its proximal operator (soft
//! thresholding), which yields exact zeros instead of weights that hover
//! around zero. Step size: backtracking line search started from a power
//! iteration estimate of the Lipschitz constant, allowed to shrink a little
//! each iteration; momentum is restarted whenever the objective would rise
//! (O'Donoghue & Candes 2015), which keeps the iterates monotone.
//!
//! Parameters are one vector `theta = [W (k x d, row-major), b (k)]`. The
//! scores `X W^T + b` are linear in theta, so the extrapolated point's
//! scores are extrapolated too, and an iteration costs one gradient matmul
//! plus one score matmul per line-search trial.

use candle_core::{Device, Tensor};

use super::data::{transposed_tensor, with_f32, Problem};
use super::error::ProbeError;
use super::model::Fitted;
use super::objective::{column_sums, sum_abs, sum_squares, Targets};
use super::settings::ProbeSettings;
use crate::util::progress::ProbeWork;

/// Power iterations for the initial Lipschitz estimate.
const POWER_ITERS: usize = 8;
/// Factor applied to the step's Lipschitz guess at every iteration.
const SHRINK: f64 = 0.8;
/// Doublings after which the line search gives up (a bug or overflow).
const MAX_BACKTRACKS: usize = 60;

/// Counters reported in the solver note.
#[derive(Debug, Default)]
struct Stats {
    iterations: usize,
    backtracks: usize,
    restarts: usize,
    converged: bool,
}

/// The objective on one problem.
struct Objective<'p, 'a> {
    p: &'p Problem<'a>,
    k: usize,
    d: usize,
    l1: f32,
    l2: f32,
}

/// A point with its scores and smooth objective value.
struct Point {
    theta: Vec<f32>,
    scores: Vec<f32>,
    smooth: f64,
}

impl Objective<'_, '_> {
    fn kd(&self) -> usize {
        self.k * self.d
    }

    /// `X W^T + b`, [rows, k] row-major.
    fn scores(&self, theta: &[f32]) -> Result<Vec<f32>, ProbeError> {
        let (w, b) = theta.split_at(self.kd());
        let wt = transposed_tensor(w, self.k, self.d)?;
        let z = self.p.x.matmul(&wt)?;
        let mut out = Vec::with_capacity(self.p.rows * self.k);
        with_f32(&z, |z| {
            for row in z.chunks_exact(self.k) {
                out.extend(row.iter().zip(b).map(|(v, b)| v + b));
            }
        })?;
        Ok(out)
    }

    /// Mean loss + (l2/2) ||W||^2.
    fn smooth(&self, theta: &[f32], scores: &[f32]) -> f64 {
        let w = &theta[..self.kd()];
        self.p.targets.loss(scores, self.k) + 0.5 * self.l2 as f64 * sum_squares(w)
    }

    /// The full objective including `l1 * sum|W|`.
    fn total(&self, pt: &Point) -> f64 {
        pt.smooth + self.l1 as f64 * sum_abs(&pt.theta[..self.kd()])
    }

    fn point(&self, theta: Vec<f32>) -> Result<Point, ProbeError> {
        let scores = self.scores(&theta)?;
        let smooth = self.smooth(&theta, &scores);
        Ok(Point {
            theta,
            scores,
            smooth,
        })
    }

    /// Gradient of the smooth part at a point.
    fn gradient(&self, pt: &Point) -> Result<Vec<f32>, ProbeError> {
        let mut dz = pt.scores.clone();
        self.p.targets.loss_grad_in_place(&mut dz, self.k);
        let mut g = vec![0.0f32; self.kd() + self.k];
        column_sums(&dz, self.k, &mut g[self.kd()..]);
        let dzt = Tensor::from_vec(dz, (self.p.rows, self.k), &Device::Cpu)?;
        let gw = dzt.t()?.matmul(&self.p.x)?;
        let (gw_out, _) = g.split_at_mut(self.kd());
        with_f32(&gw, |gw| {
            for ((o, &v), &w) in gw_out.iter_mut().zip(gw).zip(&pt.theta) {
                *o = v + self.l2 * w;
            }
        })?;
        Ok(g)
    }

    /// Proximal gradient step from `y` with step `1/lip`: soft thresholding
    /// on W (exact zeros), plain gradient step on the unpenalised bias.
    fn prox_step(&self, y: &[f32], g: &[f32], lip: f64) -> Vec<f32> {
        let step = (1.0 / lip) as f32;
        let thresh = self.l1 * step;
        let kd = self.kd();
        y.iter()
            .zip(g)
            .enumerate()
            .map(|(i, (&y, &g))| {
                let v = y - step * g;
                if i < kd {
                    soft_threshold(v, thresh)
                } else {
                    v
                }
            })
            .collect()
    }

    /// Backtracking: doubles `lip` until the quadratic upper bound at `y`
    /// holds at the candidate; returns the candidate and the accepted `lip`.
    fn line_search(
        &self,
        y: &Point,
        g: &[f32],
        mut lip: f64,
        stats: &mut Stats,
    ) -> Result<(Point, f64), ProbeError> {
        for _ in 0..MAX_BACKTRACKS {
            let cand = self.point(self.prox_step(&y.theta, g, lip))?;
            let (mut lin, mut sq) = (0.0f64, 0.0f64);
            for ((&c, &yv), &gv) in cand.theta.iter().zip(&y.theta).zip(g) {
                let diff = c as f64 - yv as f64;
                lin += gv as f64 * diff;
                sq += diff * diff;
            }
            // f32 scores carry ~1e-7 relative noise; do not backtrack on it.
            let slack = 1e-6 * y.smooth.abs().max(1e-12);
            if cand.smooth <= y.smooth + lin + 0.5 * lip * sq + slack {
                return Ok((cand, lip));
            }
            lip *= 2.0;
            stats.backtracks += 1;
        }
        Err(ProbeError::Diverged(y.smooth))
    }

    /// Lipschitz constant of the smooth gradient: curvature bound of the
    /// loss (1/2 for softmax CE, 2 for squared error) times the top
    /// eigenvalue of `[X 1]^T [X 1] / n` (power iteration), plus l2.
    fn lipschitz_estimate(&self) -> Result<f64, ProbeError> {
        let (n, d) = (self.p.rows, self.d);
        let mut v = vec![1.0f32 / ((d + 1) as f32).sqrt(); d + 1];
        let mut lambda = 0.0f64;
        for _ in 0..POWER_ITERS {
            let vt = Tensor::from_slice(&v[..d], (d, 1), &Device::Cpu)?;
            let mut u: Vec<f32> = self.p.x.matmul(&vt)?.flatten_all()?.to_vec1()?;
            u.iter_mut().for_each(|e| *e += v[d]);
            let ub: f32 = u.iter().sum();
            let ut = Tensor::from_vec(u, (1, n), &Device::Cpu)?;
            let mut next: Vec<f32> = ut.matmul(&self.p.x)?.flatten_all()?.to_vec1()?;
            next.push(ub);
            next.iter_mut().for_each(|e| *e /= n as f32);
            let norm = sum_squares(&next).sqrt();
            if norm == 0.0 || !norm.is_finite() {
                break;
            }
            lambda = norm;
            v = next.iter().map(|&e| (e as f64 / norm) as f32).collect();
        }
        let curvature = match self.p.targets {
            Targets::Classes(_) => 0.5,
            Targets::Values(_) => 2.0,
        };
        Ok((curvature * lambda + self.l2 as f64).max(1e-6))
    }
}

fn soft_threshold(v: f32, t: f32) -> f32 {
    if v > t {
        v - t
    } else if v < -t {
        v + t
    } else {
        0.0
    }
}

/// `a + beta (a - b)` for parameters and scores alike.
fn extrapolate(a: &[f32], b: &[f32], beta: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(&a, &b)| a + beta * (a - b)).collect()
}

/// `||a - b|| / ||a||` (0 when both are 0).
fn relative_change(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let norm = sum_squares(a).max(sum_squares(b));
    if norm == 0.0 {
        0.0
    } else {
        (diff / norm).sqrt()
    }
}

/// Trains with FISTA from zero, or from `init` (warm start along a
/// penalty path).
pub(crate) fn train_fista(
    p: &Problem<'_>,
    s: &ProbeSettings,
    init: Option<(&[f32], &[f32])>,
) -> Result<Fitted, ProbeError> {
    let obj = Objective {
        p,
        k: p.outputs,
        d: p.cols,
        l1: s.l1,
        l2: s.l2,
    };
    let theta0 = match init {
        Some((w, b)) => w.iter().chain(b).copied().collect(),
        None => vec![0.0f32; obj.kd() + obj.k],
    };
    let mut x = obj.point(theta0)?;
    let mut lip = obj.lipschitz_estimate()?;
    let mut stats = Stats::default();
    let total = iterate(&obj, s, &mut x, &mut lip, &mut stats)?;
    let (w, b) = x.theta.split_at(obj.kd());
    let zeros = w.iter().filter(|&&v| v == 0.0).count();
    let note = format!(
        "fista l1={:e} l2={:e} (l2 on SQUARED ||W||^2/2, unlike the paper's unsquared ||W||) \
         max_iter={} tol={:e} iterations={} converged={} restarts={} backtracks={} \
         objective={:.6} zero_weights={}/{}",
        s.l1,
        s.l2,
        s.max_iter,
        s.tolerance,
        stats.iterations,
        stats.converged,
        stats.restarts,
        stats.backtracks,
        total,
        zeros,
        w.len()
    );
    Ok(Fitted {
        weights: w.to_vec(),
        bias: b.to_vec(),
        note,
    })
}

/// The FISTA loop; `x` ends at the last accepted iterate. Returns its
/// objective value.
fn iterate(
    obj: &Objective<'_, '_>,
    s: &ProbeSettings,
    x: &mut Point,
    lip: &mut f64,
    stats: &mut Stats,
) -> Result<f64, ProbeError> {
    let mut f_x = obj.total(x);
    let mut prev: Option<(Vec<f32>, Vec<f32>)> = None;
    let mut t = 1.0f64;
    // An iteration counts as one batch step (the batch is every row); a
    // converged run counts the iterations it did not need when it ends.
    let work = ProbeWork::plan(s.max_iter as u64);
    while stats.iterations < s.max_iter {
        stats.iterations += 1;
        work.done(1);
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let beta = ((t - 1.0) / t_next) as f32;
        let y = match &prev {
            Some((theta_p, scores_p)) if beta > 0.0 => {
                let theta = extrapolate(&x.theta, theta_p, beta);
                let scores = extrapolate(&x.scores, scores_p, beta);
                let smooth = obj.smooth(&theta, &scores);
                Point {
                    theta,
                    scores,
                    smooth,
                }
            }
            _ => Point {
                theta: x.theta.clone(),
                scores: x.scores.clone(),
                smooth: x.smooth,
            },
        };
        let g = obj.gradient(&y)?;
        let (cand, accepted) = obj.line_search(&y, &g, *lip * SHRINK, stats)?;
        *lip = accepted;
        let f_cand = obj.total(&cand);
        if f_cand > f_x && beta > 0.0 {
            // Momentum overshot: restart from x with a plain proximal step.
            stats.restarts += 1;
            t = 1.0;
            prev = None;
            continue;
        }
        let change = relative_change(&cand.theta, &x.theta);
        let old = std::mem::replace(x, cand);
        prev = Some((old.theta, old.scores));
        f_x = f_cand;
        t = t_next;
        if change < s.tolerance as f64 {
            stats.converged = true;
            break;
        }
    }
    if !f_x.is_finite() {
        return Err(ProbeError::Diverged(f_x));
    }
    Ok(f_x)
}
