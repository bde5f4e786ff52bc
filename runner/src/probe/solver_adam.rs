//! The paper's recipe: mini-batch Adam on
//! `mean loss + l1 * sum|W| + l2 * ||W||_F`.
//!
//! Matmuls call gemm directly on the row-major buffers (`gemm.rs`); the
//! gradient of the single linear layer is written out by hand (no autograd
//! graph) and the Adam update runs in place on the weights, so a step
//! allocates nothing once its scratch buffers have grown.

use std::ops::Range;

use ::gemm::Parallelism;
use rayon::prelude::*;

use super::data::{with_f32, Problem};
use super::error::ProbeError;
use super::gemm::{matmul_into, parallelism, MatRef};
use super::model::Fitted;
use super::objective::{
    column_sums, l2_over_norm, paper_penalty, paper_penalty_grad, sum_squares, Targets,
};
use super::rng::SplitMix64;
use super::settings::ProbeSettings;
use crate::util::progress::ProbeWork;

/// Random stream ids, so init and shuffling of one seed are independent.
const INIT_STREAM: u64 = 1;
pub(crate) const SHUFFLE_STREAM: u64 = 2;
/// Parameters per parallel chunk of the Adam update (fixed for determinism).
const UPDATE_CHUNK: usize = 16 * 1024;

/// torch.nn.Linear's default init: W and b uniform in +-1/sqrt(features)
/// (kaiming_uniform with a = sqrt(5) reduces to this bound).
pub(crate) fn torch_linear_init(
    outputs: usize,
    features: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::for_stream(seed, INIT_STREAM);
    let bound = 1.0 / (features as f32).sqrt();
    let w = (0..outputs * features)
        .map(|_| rng.uniform_sym(bound))
        .collect();
    let b = (0..outputs).map(|_| rng.uniform_sym(bound)).collect();
    (w, b)
}

/// Adam's first and second moment estimates for one parameter tensor.
pub(crate) struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    pub fn new(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
}

/// The per-step constants of torch's Adam (betas 0.9/0.999, eps 1e-8).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamCoeffs {
    pub(crate) beta1: f32,
    pub(crate) beta2: f32,
    pub(crate) eps: f32,
    /// lr / (1 - beta1^t)
    pub(crate) step_size: f32,
    /// sqrt(1 - beta2^t)
    pub(crate) bc2_sqrt: f32,
    /// 1 / bc2_sqrt, rounded to nearest (for `div_bc2_sqrt`).
    pub(crate) bc2_sqrt_recip: f32,
}

impl AdamCoeffs {
    /// Constants of step `t` (1-based), bias corrections computed in f64 as
    /// torch does with Python floats.
    pub fn at_step(lr: f32, t: u64) -> Self {
        let (b1, b2) = (0.9f64, 0.999f64);
        let t = t.min(i32::MAX as u64) as i32;
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        Self {
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: 1e-8,
            step_size: (lr as f64 / (1.0 - b1.powi(t))) as f32,
            bc2_sqrt: bc2_sqrt as f32,
            bc2_sqrt_recip: 1.0 / bc2_sqrt as f32,
        }
    }

    /// `a / bc2_sqrt` correctly rounded, as the division gives it, with
    /// multiplications instead: the quotient through the rounded
    /// reciprocal, then one correction with the exact remainder (Markstein:
    /// with `r = RN(1/d)` and `q` within an ulp of `a/d`, `q + (a - q d) r`
    /// rounds to `RN(a/d)`; no underflow here since `a >= 3e-23` or 0 and
    /// `d <= 1`). The update's divisions by a per-element value stay
    /// divisions; this one was a third of the update's time on the divider.
    #[inline(always)]
    fn div_bc2_sqrt(&self, a: f32) -> f32 {
        let q = a * self.bc2_sqrt_recip;
        let remainder = (-q).mul_add(self.bc2_sqrt, a);
        remainder.mul_add(self.bc2_sqrt_recip, q)
    }
}

/// The penalty part of a gradient: `l1 sign(w) + (l2/||W||) w`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PenaltyGrad {
    pub l1: f32,
    pub l2_over_norm: f32,
}

/// One Adam step over `params` (torch's `_single_tensor_adam` formula);
/// returns the sum of squares of the new parameters, which gives the next
/// step's `||W||` without another pass over memory that left the cache.
///
/// The loop is compiled for AVX-512 and AVX2 as well as the baseline and
/// the best one the CPU has runs (the build targets plain x86-64, whose
/// 4-lane SSE made this update 10% of a whole selection). Every path does
/// the same IEEE operations in the same order, never fused, so they give
/// the same bits.
fn adam_update(
    params: &mut [f32],
    grads: &[f32],
    moments: (&mut [f32], &mut [f32]),
    c: &AdamCoeffs,
    pen: PenaltyGrad,
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has just been checked to support AVX2 and FMA.
            return unsafe { adam_update_avx2(params, grads, moments, c, pen) };
        }
    }
    adam_update_lanes(params, grads, moments, c, pen)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_update_avx2(
    params: &mut [f32],
    grads: &[f32],
    moments: (&mut [f32], &mut [f32]),
    c: &AdamCoeffs,
    pen: PenaltyGrad,
) -> f64 {
    adam_update_lanes(params, grads, moments, c, pen)
}

/// The update itself, written branch-free and without a loop-carried
/// reduction so it vectorises; the sum of squares uses fixed lanes, so it
/// is deterministic.
#[inline(always)]
fn adam_update_lanes(
    params: &mut [f32],
    grads: &[f32],
    moments: (&mut [f32], &mut [f32]),
    c: &AdamCoeffs,
    pen: PenaltyGrad,
) -> f64 {
    let (m, v) = moments;
    let n = params.len();
    let (grads, m, v) = (&grads[..n], &mut m[..n], &mut v[..n]);
    let (one_b1, one_b2) = (1.0 - c.beta1, 1.0 - c.beta2);
    for i in 0..n {
        let p = params[i];
        let g = grads[i] + paper_penalty_grad(p, pen.l1, pen.l2_over_norm);
        let mi = m[i] + one_b1 * (g - m[i]);
        let vi = c.beta2 * v[i] + one_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = p - c.step_size * mi / (c.div_bc2_sqrt(vi.sqrt()) + c.eps);
    }
    sum_squares_lanes(params)
}

/// Sum of squares in f64 over 8 fixed lanes (vectorisable, deterministic).
#[inline(always)]
pub(crate) fn sum_squares_lanes(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum();
    for c in chunks {
        for j in 0..8 {
            acc[j] += (c[j] as f64) * (c[j] as f64);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// One chunk of (parameters, gradients, first moments, second moments), as
/// the zipped chunk iterators hand it over.
type ChunkOf<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// `adam_update` over fixed chunks, in parallel or on the calling thread;
/// chunk sums are added in order either way, so the result is the same
/// bits on every run and with any thread count.
fn adam_update_chunked(
    params: &mut [f32],
    grads: &[f32],
    moments: &mut Moments,
    c: &AdamCoeffs,
    pen: PenaltyGrad,
    parallel: bool,
) -> f64 {
    let step = |(((p, g), m), v): ChunkOf<'_>| adam_update(p, g, (m, v), c, pen);
    let sums: Vec<f64> = if parallel {
        params
            .par_chunks_mut(UPDATE_CHUNK)
            .zip(grads.par_chunks(UPDATE_CHUNK))
            .zip(moments.m.par_chunks_mut(UPDATE_CHUNK))
            .zip(moments.v.par_chunks_mut(UPDATE_CHUNK))
            .map(step)
            .collect()
    } else {
        params
            .chunks_mut(UPDATE_CHUNK)
            .zip(grads.chunks(UPDATE_CHUNK))
            .zip(moments.m.chunks_mut(UPDATE_CHUNK))
            .zip(moments.v.chunks_mut(UPDATE_CHUNK))
            .map(step)
            .collect()
    };
    sums.iter().sum()
}

/// Reusable buffers of one mini-batch step.
#[derive(Default)]
pub(crate) struct BatchScratch {
    /// Scores, then their gradient, [n, k].
    z: Vec<f32>,
    /// The gradient transposed to [k, n]: gemm multiplies a contiguous
    /// left-hand side ~10% faster than a transposed view.
    dzt: Vec<f32>,
    /// dL/dW, [k, d].
    pub(crate) gw: Vec<f32>,
}

/// Data loss of one mini-batch `xb` ([n, d]) and its gradients: returns
/// the mean loss; dL/dW ([k, d]) goes to `scratch.gw`, dL/db to `gb`.
pub(crate) fn batch_gradient(
    xb: MatRef<'_>,
    w: &[f32],
    bias: &[f32],
    targets: Targets<'_>,
    scratch: &mut BatchScratch,
    gb: &mut [f32],
    par: Parallelism,
) -> f64 {
    let k = bias.len();
    let n = targets.len();
    let z = &mut scratch.z;
    matmul_into(xb, MatRef::row_major(w, k, xb.cols).t(), z, par);
    for row in z.chunks_exact_mut(k) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    let loss = targets.loss_grad_in_place(z, k);
    column_sums(z, k, gb);
    scratch.dzt.resize(n * k, 0.0);
    for (i, row) in z.chunks_exact(k).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            scratch.dzt[c * n + i] = v;
        }
    }
    let dzt = MatRef::row_major(&scratch.dzt, k, n);
    matmul_into(dzt, xb, &mut scratch.gw, par);
    loss
}

/// Which rows form each mini-batch: file order (the paper) or a seeded
/// Fisher-Yates permutation per epoch.
pub(crate) struct BatchOrder {
    rng: Option<SplitMix64>,
    perm: Vec<u32>,
    /// The current batch's rows when shuffling (gathered copy).
    rows: Vec<f32>,
    labels: Vec<u32>,
    values: Vec<f32>,
}

impl BatchOrder {
    pub(crate) fn new(rows: usize, shuffle: bool, seed: u64) -> Self {
        Self {
            rng: shuffle.then(|| SplitMix64::for_stream(seed, SHUFFLE_STREAM)),
            perm: (0..rows as u32).collect(),
            rows: Vec::new(),
            labels: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Draws this epoch's permutation (no-op in file order).
    pub(crate) fn start_epoch(&mut self) {
        if let Some(rng) = &mut self.rng {
            rng.shuffle(&mut self.perm);
        }
    }

    /// The first `width` columns of rows `start..start + len` of the epoch
    /// order of `x` ([rows, cols]): a view in file order, a gathered copy
    /// (a plain row copy, several times faster than candle's
    /// `index_select`) when shuffling.
    fn batch<'s>(
        &'s mut self,
        x: &'s [f32],
        (cols, width): (usize, usize),
        all_targets: Targets<'s>,
        start: usize,
        len: usize,
    ) -> (MatRef<'s>, Targets<'s>) {
        if self.rng.is_none() {
            let view = &x[start * cols..(start + len) * cols];
            return (
                MatRef::row_major(view, len, cols).columns(0..width),
                all_targets.slice(start, len),
            );
        }
        let rows = &self.perm[start..start + len];
        self.rows.clear();
        for &r in rows {
            let first = r as usize * cols;
            self.rows.extend_from_slice(&x[first..first + width]);
        }
        let targets = gather_targets(rows, all_targets, &mut self.labels, &mut self.values);
        (MatRef::row_major(&self.rows, len, width), targets)
    }

    /// The rows of batch `start..start + len` in this epoch's order.
    pub(crate) fn indices(&self, start: usize, len: usize) -> &[u32] {
        &self.perm[start..start + len]
    }

    /// The targets of batch `start..start + len` (a view in file order).
    pub(crate) fn targets<'s>(
        &'s mut self,
        all_targets: Targets<'s>,
        start: usize,
        len: usize,
    ) -> Targets<'s> {
        if self.rng.is_none() {
            return all_targets.slice(start, len);
        }
        let rows = &self.perm[start..start + len];
        gather_targets(rows, all_targets, &mut self.labels, &mut self.values)
    }
}

/// The targets of `rows`, copied into the reusable `labels` or `values`.
pub(crate) fn gather_targets<'s>(
    rows: &[u32],
    all_targets: Targets<'_>,
    labels: &'s mut Vec<u32>,
    values: &'s mut Vec<f32>,
) -> Targets<'s> {
    match all_targets {
        Targets::Classes(c) => {
            labels.clear();
            labels.extend(rows.iter().map(|&r| c[r as usize]));
            Targets::Classes(labels)
        }
        Targets::Values(v) => {
            values.clear();
            values.extend(rows.iter().map(|&r| v[r as usize]));
            Targets::Values(values)
        }
    }
}

/// The weights, moments and scratch buffers of one Adam run.
pub(crate) struct AdamState {
    /// [k, d], row-major.
    pub(crate) w: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    w_moments: Moments,
    b_moments: Moments,
    scratch: BatchScratch,
    /// dL/db of the current step.
    pub(crate) gb: Vec<f32>,
    step: u64,
    sum_sq: f64,
    /// Threads of the products and of the weight update: candle's count
    /// for a probe alone, 1 inside a bank (parallel over probes).
    threads: usize,
}

impl AdamState {
    pub(crate) fn new(
        k: usize,
        d: usize,
        seed: u64,
        init: Option<(&[f32], &[f32])>,
        threads: usize,
    ) -> Self {
        let (w, bias) = match init {
            Some((w, b)) => (w.to_vec(), b.to_vec()),
            None => torch_linear_init(k, d, seed),
        };
        Self {
            sum_sq: sum_squares(&w),
            w,
            bias,
            w_moments: Moments::new(k * d),
            b_moments: Moments::new(k),
            scratch: BatchScratch::default(),
            gb: vec![0.0f32; k],
            step: 0,
            threads,
        }
    }

    /// One mini-batch step; returns the batch's mean data loss.
    fn step(&mut self, xb: MatRef<'_>, targets: Targets<'_>, s: &ProbeSettings) -> f64 {
        let loss = batch_gradient(
            xb,
            &self.w,
            &self.bias,
            targets,
            &mut self.scratch,
            &mut self.gb,
            parallelism(self.threads),
        );
        let gw = std::mem::take(&mut self.scratch.gw);
        self.apply_gradient(&gw, xb.cols, s);
        self.scratch.gw = gw;
        loss
    }

    /// The Adam step of W from dL/dW (row j at `gw[j * gw_stride..]`, its
    /// first d values) and of the bias from dL/db in `self.gb`.
    pub(crate) fn apply_gradient(&mut self, gw: &[f32], gw_stride: usize, s: &ProbeSettings) {
        self.step += 1;
        let coeffs = AdamCoeffs::at_step(s.learning_rate, self.step);
        let penalty = PenaltyGrad {
            l1: s.l1,
            l2_over_norm: l2_over_norm(s.l2, self.sum_sq),
        };
        let d = self.w.len() / self.bias.len();
        let params = self.w.len();
        self.sum_sq = if gw_stride == d {
            adam_update_chunked(
                &mut self.w,
                &gw[..params],
                &mut self.w_moments,
                &coeffs,
                penalty,
                self.threads > 1,
            )
        } else {
            // A padded gradient (the bf16 products write whole tiles): the
            // same elementwise update, one row at a time.
            let moments = &mut self.w_moments;
            self.w
                .chunks_exact_mut(d)
                .zip(gw.chunks(gw_stride))
                .zip(
                    moments
                        .m
                        .chunks_exact_mut(d)
                        .zip(moments.v.chunks_exact_mut(d)),
                )
                .map(|((w, g), (m, v))| adam_update(w, &g[..d], (m, v), &coeffs, penalty))
                .sum()
        };
        let bm = (&mut self.b_moments.m[..], &mut self.b_moments.v[..]);
        adam_update(
            &mut self.bias,
            &self.gb,
            bm,
            &coeffs,
            PenaltyGrad::default(),
        );
    }

    /// Every mini-batch of `x` ([rows, cols]) in `order`, each counted in
    /// `work`; returns the summed row losses.
    fn pass(
        &mut self,
        x: &[f32],
        targets: Targets<'_>,
        order: &mut BatchOrder,
        s: &ProbeSettings,
        work: &ProbeWork,
    ) -> f64 {
        let rows = targets.len();
        let cols = self.w.len() / self.bias.len();
        let mut total = 0.0f64;
        for start in (0..rows).step_by(s.batch_size) {
            let len = s.batch_size.min(rows - start);
            let (xb, batch_targets) = order.batch(x, (cols, cols), targets, start, len);
            total += self.step(xb, batch_targets, s) * len as f64;
            work.done(1);
        }
        total
    }
}

/// Narrower probes than this run their products on one thread: measured
/// on 2 cores with 20,000 rows and 45 classes (`examples/probe_speed`),
/// splitting a 128-row batch's products over the threads made a 539-column
/// probe 1.8x slower, was even at 2,688 columns and 6% faster at 9,984.
const PARALLEL_FROM_COLUMNS: usize = 4096;

/// Threads of a probe trained alone (the results are the same bits with
/// any count; see `adam_update_chunked`).
fn probe_threads(cols: usize) -> usize {
    if cols >= PARALLEL_FROM_COLUMNS {
        candle_core::utils::get_num_threads()
    } else {
        1
    }
}

/// Trains with the paper's Adam recipe. `init` replaces torch's random init
/// (warm start); the result is bit-identical for equal inputs and seed.
pub(crate) fn train_adam(
    p: &Problem<'_>,
    s: &ProbeSettings,
    seed: u64,
    init: Option<(&[f32], &[f32])>,
) -> Result<Fitted, ProbeError> {
    let mut state = AdamState::new(p.outputs, p.cols, seed, init, probe_threads(p.cols));
    let mut order = BatchOrder::new(p.rows, s.shuffle, seed);
    let mut epoch_loss = f64::NAN;
    let work = ProbeWork::plan(batch_steps(p.rows, s, 1));
    with_f32(&p.x, |x| {
        for _ in 0..s.epochs {
            order.start_epoch();
            epoch_loss = state.pass(x, p.targets, &mut order, s, &work) / p.rows as f64;
        }
    })?;
    finish(state.w, state.bias, s, epoch_loss)
}

/// Trains one probe per column range of `p.x` over the same mini-batches:
/// each batch is gathered once and every probe steps on a view of its
/// columns, the probes in parallel (each on one thread). A probe gets the
/// init, batches and updates it would get alone with the same seed, so each
/// result equals [`train_adam`] on that range's columns up to the rounding
/// of the products; what is saved is the per-probe gather, standardisation
/// and shuffled copy of the rows, and the threads' wake-ups of small
/// products split over the cores.
pub(crate) fn train_adam_bank(
    p: &Problem<'_>,
    ranges: &[Range<usize>],
    s: &ProbeSettings,
    seed: u64,
) -> Result<Vec<Fitted>, ProbeError> {
    let mut states: Vec<AdamState> = ranges
        .iter()
        .map(|r| AdamState::new(p.outputs, r.len(), seed, None, 1))
        .collect();
    let mut order = BatchOrder::new(p.rows, s.shuffle, seed);
    // Only the columns some probe reads are gathered (a search group reads
    // a prefix of its matrix).
    let width = ranges.iter().map(|r| r.end).max().unwrap_or(0);
    let epoch_losses = with_f32(&p.x, |x| {
        bank_epochs(
            p.rows,
            ranges.len(),
            s,
            &mut order,
            |order, start, len, _| {
                let (xb, targets) = order.batch(x, (p.cols, width), p.targets, start, len);
                states
                    .par_iter_mut()
                    .zip(ranges)
                    .map(|(state, range)| state.step(xb.columns(range.clone()), targets, s))
                    .collect()
            },
        )
    })?;
    states
        .into_iter()
        .zip(epoch_losses)
        .map(|(state, loss)| finish(state.w, state.bias, s, loss))
        .collect()
}

/// The epochs of a probe bank: each epoch draws its order, and
/// `step_all(order, start, len, last_epoch)` steps every probe on that
/// batch and returns their mean losses (only the last epoch's are used, so
/// a step may skip computing them before). Returns each probe's mean loss
/// over the last epoch.
pub(crate) fn bank_epochs(
    rows: usize,
    probes: usize,
    s: &ProbeSettings,
    order: &mut BatchOrder,
    mut step_all: impl FnMut(&mut BatchOrder, usize, usize, bool) -> Vec<f64>,
) -> Vec<f64> {
    let mut epoch_losses = vec![f64::NAN; probes];
    let work = ProbeWork::plan(batch_steps(rows, s, probes));
    for epoch in 0..s.epochs {
        let last = epoch + 1 == s.epochs;
        order.start_epoch();
        let mut totals = vec![0.0f64; probes];
        for start in (0..rows).step_by(s.batch_size) {
            let len = s.batch_size.min(rows - start);
            for (total, loss) in totals.iter_mut().zip(step_all(order, start, len, last)) {
                *total += loss * len as f64;
            }
            work.done(probes as u64);
        }
        for (loss, total) in epoch_losses.iter_mut().zip(&totals) {
            *loss = total / rows as f64;
        }
    }
    epoch_losses
}

/// The paper's recipe over training rows read a block at a time
/// (`load(first_row, rows)` gives a row-major `[rows, cols]` matrix). In
/// file order the batches are exactly those of [`train_adam`] (blocks hold
/// whole batches); shuffling permutes the blocks and the rows inside each
/// block, seeded, since a global permutation would read every block per
/// batch.
pub(crate) fn train_adam_blocks(
    shape: (usize, usize, usize),
    targets: Targets<'_>,
    block_rows: usize,
    load: &mut dyn FnMut(usize, usize) -> Result<Vec<f32>, ProbeError>,
    s: &ProbeSettings,
    seed: u64,
) -> Result<Fitted, ProbeError> {
    let (rows, cols, outputs) = shape;
    let mut state = AdamState::new(outputs, cols, seed, None, probe_threads(cols));
    let starts: Vec<usize> = (0..rows).step_by(block_rows.max(1)).collect();
    let mut block_rng = SplitMix64::for_stream(seed, SHUFFLE_STREAM + 1);
    let mut epoch_loss = f64::NAN;
    let per_epoch: usize = starts
        .iter()
        .map(|&start| block_rows.min(rows - start).div_ceil(s.batch_size.max(1)))
        .sum();
    let work = ProbeWork::plan(per_epoch as u64 * s.epochs as u64);
    for epoch in 0..s.epochs {
        let mut order_of_blocks: Vec<u32> = (0..starts.len() as u32).collect();
        if s.shuffle {
            block_rng.shuffle(&mut order_of_blocks);
        }
        let mut total = 0.0;
        for &b in &order_of_blocks {
            let start = starts[b as usize];
            let len = block_rows.min(rows - start);
            let x = load(start, len)?;
            let block_seed =
                seed ^ ((epoch as u64) << 32 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut order = BatchOrder::new(len, s.shuffle, block_seed);
            order.start_epoch();
            total += state.pass(&x, targets.slice(start, len), &mut order, s, &work);
        }
        epoch_loss = total / rows as f64;
    }
    finish(state.w, state.bias, s, epoch_loss)
}

/// The batch steps of `probes` probes trained together on `rows` rows for
/// the settings' epochs (for the progress display).
pub(crate) fn batch_steps(rows: usize, s: &ProbeSettings, probes: usize) -> u64 {
    let per_epoch = rows.div_ceil(s.batch_size.max(1)) as u64;
    per_epoch * s.epochs as u64 * probes as u64
}

/// Checks the trained weights and writes the solver note.
pub(crate) fn finish(
    weights: Vec<f32>,
    bias: Vec<f32>,
    s: &ProbeSettings,
    epoch_loss: f64,
) -> Result<Fitted, ProbeError> {
    let penalty = paper_penalty(&weights, s.l1, s.l2);
    let objective = epoch_loss + penalty;
    if !weights.iter().chain(&bias).all(|v| v.is_finite()) || epoch_loss.is_infinite() {
        return Err(ProbeError::Diverged(objective));
    }
    let note = format!(
        "adam lr={} epochs={} batch={} l1={:e} l2={:e} (l2 on unsquared ||W||, as the paper) \
         shuffle={} last_epoch_loss={:.6} penalty={:.6}",
        s.learning_rate, s.epochs, s.batch_size, s.l1, s.l2, s.shuffle, epoch_loss, penalty
    );
    Ok(Fitted {
        weights,
        bias,
        note,
    })
}

#[cfg(test)]
mod update_tests {
    use super::*;

    /// The division by sqrt(1 - beta2^t) through the reciprocal and one
    /// correction gives the same bits as the division, at every step of a
    /// long run and for values of every magnitude the update meets.
    #[test]
    fn the_corrected_reciprocal_divides_exactly() {
        let mut rng = SplitMix64::for_stream(7, 0);
        for t in (1..=40_000u64).step_by(7).chain([1, 2, 3, 1_000_000]) {
            let c = AdamCoeffs::at_step(1e-3, t);
            for _ in 0..200 {
                // sqrt(v) for v anywhere from 1e-45 to 1e6.
                let exponent = (rng.next_u64() % 1000) as f32 / 1000.0 * 54.0 - 26.0;
                let mantissa = 1.0 + (rng.next_u64() % 1_000_000) as f32 / 1_000_000.0;
                let a = mantissa * 10f32.powf(exponent);
                assert_eq!(
                    c.div_bc2_sqrt(a).to_bits(),
                    (a / c.bc2_sqrt).to_bits(),
                    "a = {a:e}, t = {t}"
                );
            }
            assert_eq!(c.div_bc2_sqrt(0.0), 0.0);
        }
    }

    /// Deterministic values in [-1, 1) with zeros mixed in (sign(0) = 0).
    fn values(n: usize, salt: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i ^ salt).wrapping_mul(2_654_435_761) >> 8;
                if h.is_multiple_of(7) {
                    0.0
                } else {
                    h as f32 / (1u32 << 23) as f32 - 1.0
                }
            })
            .collect()
    }

    #[test]
    fn every_simd_path_gives_the_baseline_bits() {
        let n = 1_003;
        let grads = values(n, 1);
        let coeffs = AdamCoeffs::at_step(1e-3, 7);
        let pen = PenaltyGrad {
            l1: 1e-5,
            l2_over_norm: 3e-6,
        };
        type Update<'a> = dyn Fn(&mut [f32], &mut [f32], &mut [f32]) -> f64 + 'a;
        let run = |update: &Update<'_>| {
            let (mut p, mut m, mut v) = (values(n, 2), values(n, 3), values(n, 4));
            v.iter_mut().for_each(|x| *x = x.abs());
            let sum = update(&mut p, &mut m, &mut v);
            (p, m, v, sum.to_bits())
        };
        let baseline = run(&|p, m, v| adam_update_lanes(p, &grads, (m, v), &coeffs, pen));
        let dispatched = run(&|p, m, v| adam_update(p, &grads, (m, v), &coeffs, pen));
        assert_eq!(baseline, dispatched);
    }
}
