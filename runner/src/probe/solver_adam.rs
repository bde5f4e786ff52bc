//! The paper's recipe: mini-batch Adam on
//! `mean loss + l1 * sum|W| + l2 * ||W||_F`.
//!
//! Matmuls run through candle; the gradient of the single linear layer is
//! written out by hand (no autograd graph), and the Adam update of `W` runs
//! in place on the weight tensor's storage through a candle in-place op, so a
//! step allocates only the small score matrix and the gradient tensor.

use std::cell::{Cell, RefCell};

use candle_core::{CpuStorage, Device, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use super::data::{with_f32, Problem};
use super::error::ProbeError;
use super::model::Fitted;
use super::objective::{
    column_sums, l2_over_norm, paper_penalty, paper_penalty_grad, sum_squares, Targets,
};
use super::rng::SplitMix64;
use super::settings::ProbeSettings;

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
}

impl AdamCoeffs {
    /// Constants of step `t` (1-based), bias corrections computed in f64 as
    /// torch does with Python floats.
    pub fn at_step(lr: f32, t: u64) -> Self {
        let (b1, b2) = (0.9f64, 0.999f64);
        let t = t.min(i32::MAX as u64) as i32;
        Self {
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: 1e-8,
            step_size: (lr as f64 / (1.0 - b1.powi(t))) as f32,
            bc2_sqrt: (1.0 - b2.powi(t)).sqrt() as f32,
        }
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
/// Written branch-free and without a loop-carried reduction so it
/// vectorises; the sum of squares uses fixed lanes, so it is deterministic.
fn adam_update(
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
        params[i] = p - c.step_size * mi / (vi.sqrt() / c.bc2_sqrt + c.eps);
    }
    sum_squares_lanes(params)
}

/// Sum of squares in f64 over 8 fixed lanes (vectorisable, deterministic).
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

/// `adam_update` over fixed chunks in parallel; chunk sums are added in
/// order, so the result is the same on every run.
fn adam_update_par(
    params: &mut [f32],
    grads: &[f32],
    moments: &mut Moments,
    c: &AdamCoeffs,
    pen: PenaltyGrad,
) -> f64 {
    let sums: Vec<f64> = params
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(grads.par_chunks(UPDATE_CHUNK))
        .zip(moments.m.par_chunks_mut(UPDATE_CHUNK))
        .zip(moments.v.par_chunks_mut(UPDATE_CHUNK))
        .map(|(((p, g), m), v)| adam_update(p, g, (m, v), c, pen))
        .collect();
    sums.iter().sum()
}

/// In-place Adam step of the weight tensor given its data gradient.
struct WeightStep<'s> {
    moments: RefCell<&'s mut Moments>,
    coeffs: AdamCoeffs,
    penalty: PenaltyGrad,
    /// Sum of squares of the updated weights (output).
    sum_sq: Cell<f64>,
}

impl InplaceOp2 for WeightStep<'_> {
    fn name(&self) -> &'static str {
        "probe-adam-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((a1, b1)), Some((a2, b2))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("probe-adam-step: tensors must be contiguous")
        };
        let (CpuStorage::F32(w), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("probe-adam-step: tensors must be f32")
        };
        let mut moments = self.moments.borrow_mut();
        let sum_sq = adam_update_par(
            &mut w[a1..b1],
            &g[a2..b2],
            &mut moments,
            &self.coeffs,
            self.penalty,
        );
        self.sum_sq.set(sum_sq);
        Ok(())
    }
}

/// Reusable buffers of one mini-batch step.
#[derive(Default)]
pub(crate) struct BatchScratch {
    /// Scores, then their gradient, [n, k].
    z: Vec<f32>,
    /// The gradient transposed to [k, n]: gemm multiplies a contiguous
    /// left-hand side ~10% faster than a transposed view.
    dzt: Vec<f32>,
}

/// Data loss of one mini-batch and its gradients: returns the mean loss and
/// dL/dW as a [k, d] tensor; dL/db goes to `gb`.
pub(crate) fn batch_gradient(
    xb: &Tensor,
    w: &Tensor,
    bias: &[f32],
    targets: Targets<'_>,
    scratch: &mut BatchScratch,
    gb: &mut [f32],
) -> Result<(f64, Tensor), ProbeError> {
    let k = bias.len();
    let n = targets.len();
    let logits = xb.matmul(&w.t()?)?;
    let z = &mut scratch.z;
    z.clear();
    with_f32(&logits, |logits| {
        for row in logits.chunks_exact(k) {
            z.extend(row.iter().zip(bias).map(|(v, b)| v + b));
        }
    })?;
    let loss = targets.loss_grad_in_place(z, k);
    column_sums(z, k, gb);
    scratch.dzt.resize(n * k, 0.0);
    for (i, row) in z.chunks_exact(k).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            scratch.dzt[c * n + i] = v;
        }
    }
    let dzt = Tensor::from_slice(&scratch.dzt, (k, n), &Device::Cpu)?;
    let gw = dzt.matmul(xb)?;
    Ok((loss, gw))
}

/// Which rows form each mini-batch: file order (the paper) or a seeded
/// Fisher-Yates permutation per epoch.
struct BatchOrder {
    rng: Option<SplitMix64>,
    perm: Vec<u32>,
    perm_tensor: Option<Tensor>,
    labels: Vec<u32>,
    values: Vec<f32>,
}

impl BatchOrder {
    fn new(rows: usize, shuffle: bool, seed: u64) -> Self {
        Self {
            rng: shuffle.then(|| SplitMix64::for_stream(seed, SHUFFLE_STREAM)),
            perm: (0..rows as u32).collect(),
            perm_tensor: None,
            labels: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Draws this epoch's permutation (no-op in file order).
    fn start_epoch(&mut self) -> Result<(), ProbeError> {
        if let Some(rng) = &mut self.rng {
            rng.shuffle(&mut self.perm);
            let n = self.perm.len();
            self.perm_tensor = Some(Tensor::from_slice(&self.perm, n, &Device::Cpu)?);
        }
        Ok(())
    }

    /// Rows `start..start + len` of the epoch order: a view in file order,
    /// a gathered copy when shuffling.
    fn batch<'s>(
        &'s mut self,
        x: &Tensor,
        all_targets: Targets<'s>,
        start: usize,
        len: usize,
    ) -> Result<(Tensor, Targets<'s>), ProbeError> {
        let Some(perm_tensor) = &self.perm_tensor else {
            return Ok((x.narrow(0, start, len)?, all_targets.slice(start, len)));
        };
        let idx = perm_tensor.narrow(0, start, len)?;
        let xb = x.index_select(&idx, 0)?;
        let rows = &self.perm[start..start + len];
        let targets = match all_targets {
            Targets::Classes(c) => {
                self.labels.clear();
                self.labels.extend(rows.iter().map(|&r| c[r as usize]));
                Targets::Classes(&self.labels)
            }
            Targets::Values(v) => {
                self.values.clear();
                self.values.extend(rows.iter().map(|&r| v[r as usize]));
                Targets::Values(&self.values)
            }
        };
        Ok((xb, targets))
    }
}

/// The weights, moments and scratch buffers of one Adam run.
struct AdamState {
    w: Tensor,
    bias: Vec<f32>,
    w_moments: Moments,
    b_moments: Moments,
    scratch: BatchScratch,
    gb: Vec<f32>,
    step: u64,
    sum_sq: f64,
}

impl AdamState {
    fn new(
        k: usize,
        d: usize,
        seed: u64,
        init: Option<(&[f32], &[f32])>,
    ) -> Result<Self, ProbeError> {
        let (w0, bias) = match init {
            Some((w, b)) => (w.to_vec(), b.to_vec()),
            None => torch_linear_init(k, d, seed),
        };
        Ok(Self {
            sum_sq: sum_squares(&w0),
            w: Tensor::from_vec(w0, (k, d), &Device::Cpu)?,
            bias,
            w_moments: Moments::new(k * d),
            b_moments: Moments::new(k),
            scratch: BatchScratch::default(),
            gb: vec![0.0f32; k],
            step: 0,
        })
    }

    /// One mini-batch step; returns the batch's mean data loss.
    fn step(
        &mut self,
        xb: &Tensor,
        targets: Targets<'_>,
        s: &ProbeSettings,
    ) -> Result<f64, ProbeError> {
        let (loss, gw) = batch_gradient(
            xb,
            &self.w,
            &self.bias,
            targets,
            &mut self.scratch,
            &mut self.gb,
        )?;
        self.step += 1;
        let coeffs = AdamCoeffs::at_step(s.learning_rate, self.step);
        let penalty = PenaltyGrad {
            l1: s.l1,
            l2_over_norm: l2_over_norm(s.l2, self.sum_sq),
        };
        let op = WeightStep {
            moments: RefCell::new(&mut self.w_moments),
            coeffs,
            penalty,
            sum_sq: Cell::new(0.0),
        };
        self.w.inplace_op2(&gw, &op)?;
        self.sum_sq = op.sum_sq.get();
        let bm = (&mut self.b_moments.m[..], &mut self.b_moments.v[..]);
        adam_update(
            &mut self.bias,
            &self.gb,
            bm,
            &coeffs,
            PenaltyGrad::default(),
        );
        Ok(loss)
    }

    /// Every mini-batch of `x` in `order`; returns the summed row losses.
    fn pass(
        &mut self,
        x: &Tensor,
        targets: Targets<'_>,
        order: &mut BatchOrder,
        s: &ProbeSettings,
    ) -> Result<f64, ProbeError> {
        let rows = targets.len();
        let mut total = 0.0f64;
        for start in (0..rows).step_by(s.batch_size) {
            let len = s.batch_size.min(rows - start);
            let (xb, batch_targets) = order.batch(x, targets, start, len)?;
            total += self.step(&xb, batch_targets, s)? * len as f64;
        }
        Ok(total)
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
    let mut state = AdamState::new(p.outputs, p.cols, seed, init)?;
    let mut order = BatchOrder::new(p.rows, s.shuffle, seed);
    let mut epoch_loss = f64::NAN;
    for _ in 0..s.epochs {
        order.start_epoch()?;
        epoch_loss = state.pass(&p.x, p.targets, &mut order, s)? / p.rows as f64;
    }
    finish(state.w, state.bias, s, epoch_loss)
}

/// The paper's recipe over training rows read a block at a time
/// (`load(first_row, rows)` gives a `[rows, cols]` tensor). In file order
/// the batches are exactly those of [`train_adam`] (blocks hold whole
/// batches); shuffling permutes the blocks and the rows inside each block,
/// seeded, since a global permutation would read every block per batch.
pub(crate) fn train_adam_blocks(
    shape: (usize, usize, usize),
    targets: Targets<'_>,
    block_rows: usize,
    load: &mut dyn FnMut(usize, usize) -> Result<Tensor, ProbeError>,
    s: &ProbeSettings,
    seed: u64,
) -> Result<Fitted, ProbeError> {
    let (rows, cols, outputs) = shape;
    let mut state = AdamState::new(outputs, cols, seed, None)?;
    let starts: Vec<usize> = (0..rows).step_by(block_rows.max(1)).collect();
    let mut block_rng = SplitMix64::for_stream(seed, SHUFFLE_STREAM + 1);
    let mut epoch_loss = f64::NAN;
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
            order.start_epoch()?;
            total += state.pass(&x, targets.slice(start, len), &mut order, s)?;
        }
        epoch_loss = total / rows as f64;
    }
    finish(state.w, state.bias, s, epoch_loss)
}

/// Reads the weights back and writes the solver note.
pub(crate) fn finish(
    w: Tensor,
    bias: Vec<f32>,
    s: &ProbeSettings,
    epoch_loss: f64,
) -> Result<Fitted, ProbeError> {
    let weights: Vec<f32> = w.flatten_all()?.to_vec1()?;
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
