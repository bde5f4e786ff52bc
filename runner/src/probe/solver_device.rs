//! The paper's Adam recipe with candle's standard operations, for a GPU
//! (`probe: {device: cuda}` in a build with the `cuda` feature).
//!
//! The CPU keeps the fused solver of `solver_adam.rs` (in-place updates on
//! the weight buffer, several times faster there); this one runs every step
//! as tensor operations on the device. Same batches (file order or the same
//! seeded permutation), same loss, penalty and torch Adam formula; tested
//! on the CPU against the fused solver.

use candle_core::{DType, Device, Tensor, D};

use super::data::Problem;
use super::error::ProbeError;
use super::model::Fitted;
use super::objective::Targets;
use super::rng::SplitMix64;
use super::settings::ProbeSettings;
use super::solver_adam::{batch_steps, finish, torch_linear_init, AdamCoeffs, SHUFFLE_STREAM};
use crate::util::progress::ProbeWork;

/// The device a `probe.device` setting names: `cpu`, `cuda` or `cuda:N`.
pub(crate) fn device(name: &str) -> Result<Device, String> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("device '{name}' is not `cpu`, `cuda` or `cuda:N`"))?,
    };
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "device '{name}': this sieve was built without CUDA; rebuild with `cargo build --release --features sieve-runner/cuda` on a machine with the CUDA toolkit (docs/GPU.md)"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| format!("device '{name}': cannot open the GPU: {e}"))
}

/// Adam's state as device tensors.
struct DeviceAdam {
    w: Tensor,
    b: Tensor,
    m: [Tensor; 2],
    v: [Tensor; 2],
    step: u64,
}

/// Trains with the paper's recipe on `device`; `init` as in `train_adam`.
pub(crate) fn train_adam_on(
    device: &Device,
    p: &Problem<'_>,
    s: &ProbeSettings,
    seed: u64,
    init: Option<(&[f32], &[f32])>,
) -> Result<Fitted, ProbeError> {
    let (k, d) = (p.outputs, p.cols);
    let (w0, b0) = match init {
        Some((w, b)) => (w.to_vec(), b.to_vec()),
        None => torch_linear_init(k, d, seed),
    };
    let x = p.x.to_device(device)?;
    let mut adam = DeviceAdam {
        w: Tensor::from_vec(w0, (k, d), device)?,
        b: Tensor::from_vec(b0, k, device)?,
        m: [
            Tensor::zeros((k, d), DType::F32, device)?,
            Tensor::zeros(k, DType::F32, device)?,
        ],
        v: [
            Tensor::zeros((k, d), DType::F32, device)?,
            Tensor::zeros(k, DType::F32, device)?,
        ],
        step: 0,
    };
    let mut rng = s
        .shuffle
        .then(|| SplitMix64::for_stream(seed, SHUFFLE_STREAM));
    let mut perm: Vec<u32> = (0..p.rows as u32).collect();
    let mut epoch_loss = f64::NAN;
    let work = ProbeWork::plan(batch_steps(p.rows, s, 1));
    for _ in 0..s.epochs {
        if let Some(rng) = &mut rng {
            rng.shuffle(&mut perm);
        }
        let mut total = 0.0;
        for start in (0..p.rows).step_by(s.batch_size) {
            let len = s.batch_size.min(p.rows - start);
            let rows = &perm[start..start + len];
            let xb = match rng {
                Some(_) => x.index_select(&Tensor::from_slice(rows, len, device)?, 0)?,
                None => x.narrow(0, start, len)?,
            };
            let target = batch_target(p.targets, rows, k, device)?;
            total += adam.step(&xb, &target, p.targets, s)? * len as f64;
            work.done(1);
        }
        epoch_loss = total / p.rows as f64;
    }
    let w: Vec<f32> = adam.w.flatten_all()?.to_vec1()?;
    let bias = adam.b.to_vec1::<f32>()?;
    let mut fitted = finish(w, bias, s, epoch_loss)?;
    fitted.note = format!("{} on {device:?}", fitted.note);
    Ok(fitted)
}

/// One-hot rows (classification) or target values `[len, 1]` (regression)
/// of the batch's rows.
fn batch_target(
    targets: Targets<'_>,
    rows: &[u32],
    k: usize,
    device: &Device,
) -> Result<Tensor, ProbeError> {
    Ok(match targets {
        Targets::Classes(labels) => {
            let mut one_hot = vec![0f32; rows.len() * k];
            for (i, &r) in rows.iter().enumerate() {
                one_hot[i * k + labels[r as usize] as usize] = 1.0;
            }
            Tensor::from_vec(one_hot, (rows.len(), k), device)?
        }
        Targets::Values(values) => {
            let picked: Vec<f32> = rows.iter().map(|&r| values[r as usize]).collect();
            Tensor::from_vec(picked, (rows.len(), 1), device)?
        }
    })
}

impl DeviceAdam {
    /// One step; returns the batch's mean data loss.
    fn step(
        &mut self,
        xb: &Tensor,
        target: &Tensor,
        kind: Targets<'_>,
        s: &ProbeSettings,
    ) -> Result<f64, ProbeError> {
        let n = xb.dim(0)? as f64;
        let z = xb.matmul(&self.w.t()?)?.broadcast_add(&self.b)?;
        let (loss, dz) = match kind {
            Targets::Classes(_) => {
                let shifted = z.broadcast_sub(&z.max_keepdim(D::Minus1)?)?;
                let e = shifted.exp()?;
                let sum = e.sum_keepdim(D::Minus1)?;
                let log_probs = shifted.broadcast_sub(&sum.log()?)?;
                let loss = -(log_probs * target)?.sum_all()?.to_scalar::<f32>()? as f64 / n;
                let probs = e.broadcast_div(&sum)?;
                (loss, ((probs - target)? / n)?)
            }
            Targets::Values(_) => {
                let error = (z - target)?;
                let loss = error.sqr()?.sum_all()?.to_scalar::<f32>()? as f64 / n;
                (loss, (error * (2.0 / n))?)
            }
        };
        let norm = self.w.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
        let l2_over_norm = if norm > 0.0 { s.l2 as f64 / norm } else { 0.0 };
        let penalty = ((self.w.sign()? * s.l1 as f64)? + (&self.w * l2_over_norm)?)?;
        let gw = (dz.t()?.matmul(xb)? + penalty)?;
        let gb = dz.sum(0)?;
        self.step += 1;
        let c = AdamCoeffs::at_step(s.learning_rate, self.step);
        self.w = adam_update(&self.w, &gw, &mut self.m[0], &mut self.v[0], &c)?;
        self.b = adam_update(&self.b, &gb, &mut self.m[1], &mut self.v[1], &c)?;
        Ok(loss)
    }
}

/// torch's Adam update of one parameter tensor.
fn adam_update(
    p: &Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    c: &AdamCoeffs,
) -> Result<Tensor, ProbeError> {
    let (b1, b2) = (c.beta1 as f64, c.beta2 as f64);
    *m = ((&*m * b1)? + (g * (1.0 - b1))?)?;
    *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
    let denom = ((v.sqrt()? / c.bc2_sqrt as f64)? + c.eps as f64)?;
    Ok((p - ((&*m / denom)? * c.step_size as f64)?)?)
}
