//! The encoder on any candle device (a CUDA GPU with the `cuda` feature):
//! the same network as `encoder.rs`, written with candle's standard
//! operations on padded batches instead of the CPU's packed, fused kernels.
//!
//! The CPU path stays the fused one (it is several times faster there); this
//! path exists for GPUs, where candle's standard operations are the fast
//! ones. It is tested on the CPU against the fused path (same hidden states
//! to 1e-4), so the mathematics are checked on every machine; only running
//! it on a GPU needs one (see docs/GPU.md).

use candle_core::{Device, Result, Tensor, D};
use sieve_encoder_common::{HiddenStates, PaddedBatch};

use crate::config::Activation;
use crate::encoder::{Encoder, EncoderLayer, EncoderParts, Linear};
use crate::ops::NormParams;

/// Added to the scores of padding keys: their softmax weight becomes 0.
const MASKED: f32 = -1e9;

struct DeviceLinear {
    weight_t: Tensor,
    bias: Tensor,
}

struct DeviceNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

struct DeviceLayer {
    qkv: DeviceLinear,
    attention_out: DeviceLinear,
    attention_norm: DeviceNorm,
    ffn_in: DeviceLinear,
    ffn_out: DeviceLinear,
    ffn_norm: DeviceNorm,
}

/// An encoder's weights on `device`.
pub struct DeviceEncoder {
    device: Device,
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    embedding_norm: DeviceNorm,
    layers: Vec<DeviceLayer>,
    heads: usize,
    hidden: usize,
    position_offset: u32,
    activation: Activation,
}

impl DeviceEncoder {
    /// Copies `encoder`'s (already fused and transposed) weights to `device`.
    pub fn new(encoder: &Encoder, device: &Device) -> Result<Self> {
        let parts: &EncoderParts = encoder.parts();
        let hidden = parts.shape.hidden_size;
        let table = |values: &[f32]| -> Result<Tensor> {
            Tensor::from_slice(values, (values.len() / hidden, hidden), device)
        };
        Ok(DeviceEncoder {
            device: device.clone(),
            word: table(&parts.embeddings.word)?,
            position: table(&parts.embeddings.position)?,
            token_type: parts
                .embeddings
                .token_type
                .as_deref()
                .map(table)
                .transpose()?,
            embedding_norm: norm(&parts.embeddings.norm, device)?,
            layers: parts
                .layers
                .iter()
                .map(|layer| DeviceLayer::new(layer, device))
                .collect::<Result<_>>()?,
            heads: parts.shape.num_heads,
            hidden,
            position_offset: parts.position_offset,
            activation: parts.shape.activation,
        })
    }

    /// Hidden states `0..=last_layer` of a padded batch, padded layout.
    /// `relative` is MPNet's per-batch bias table (see `encoder.rs`).
    pub fn hidden_states(
        &self,
        encoder: &Encoder,
        batch: &PaddedBatch,
        last_layer: usize,
    ) -> std::result::Result<HiddenStates, String> {
        encoder.check_batch(batch, last_layer)?;
        let values = self
            .forward(encoder, batch, last_layer)
            .map_err(|e| format!("forward pass on {:?} failed: {e}", self.device))?;
        HiddenStates::padded(
            values,
            last_layer + 1,
            batch.batch,
            batch.seq_len,
            self.hidden,
        )
    }

    fn forward(
        &self,
        encoder: &Encoder,
        batch: &PaddedBatch,
        last_layer: usize,
    ) -> Result<Vec<f32>> {
        let (b, s) = (batch.batch, batch.seq_len);
        let ids = Tensor::from_slice(&batch.input_ids, b * s, &self.device)?;
        let positions: Vec<u32> = (0..b)
            .flat_map(|_| (0..s as u32).map(|p| p + self.position_offset))
            .collect();
        let positions = Tensor::from_vec(positions, b * s, &self.device)?;
        let mut x = self.word.index_select(&ids, 0)?;
        x = (x + self.position.index_select(&positions, 0)?)?;
        if let Some(types) = &self.token_type {
            let type_ids = Tensor::from_slice(&batch.type_ids, b * s, &self.device)?;
            x = (x + types.index_select(&type_ids, 0)?)?;
        }
        x = layer_norm(&x, &self.embedding_norm)?;
        let mask = self.mask(batch)?;
        let relative = self.relative_bias(encoder, s)?;
        let mut values = Vec::with_capacity((last_layer + 1) * b * s * self.hidden);
        values.extend(x.flatten_all()?.to_vec1::<f32>()?);
        for layer in &self.layers[..last_layer] {
            x = self.layer_forward(layer, &x, (b, s), &mask, relative.as_ref())?;
            values.extend(x.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(values)
    }

    /// `[batch, 1, 1, seq]`: 0 on real tokens, [`MASKED`] on padding.
    fn mask(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let mut mask = vec![MASKED; batch.batch * batch.seq_len];
        for (row, &length) in batch.lengths.iter().enumerate() {
            mask[row * batch.seq_len..row * batch.seq_len + length].fill(0.0);
        }
        Tensor::from_vec(mask, (batch.batch, 1, 1, batch.seq_len), &self.device)
    }

    /// MPNet's relative-position bias as `[1, heads, seq, seq]`.
    fn relative_bias(&self, encoder: &Encoder, seq: usize) -> Result<Option<Tensor>> {
        let Some(bias) = encoder.parts().relative_bias.as_ref() else {
            return Ok(None);
        };
        let table = bias.table(seq);
        let width = 2 * table.max_len - 1;
        let mut values = Vec::with_capacity(self.heads * seq * seq);
        for head in 0..self.heads {
            for i in 0..seq {
                for j in 0..seq {
                    values.push(table.values[head * width + table.max_len - 1 + j - i]);
                }
            }
        }
        Tensor::from_vec(values, (1, self.heads, seq, seq), &self.device).map(Some)
    }

    fn layer_forward(
        &self,
        layer: &DeviceLayer,
        x: &Tensor,
        (b, s): (usize, usize),
        mask: &Tensor,
        relative: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (h, heads) = (self.hidden, self.heads);
        let qkv = linear(x, &layer.qkv)?;
        let split = |part: usize| -> Result<Tensor> {
            qkv.narrow(1, part * h, h)?
                .reshape((b, s, heads, h / heads))?
                .transpose(1, 2)?
                .contiguous()
        };
        // The query weights carry 1/sqrt(head_size) already (encoder.rs).
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let mut scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(mask)?;
        if let Some(relative) = relative {
            scores = scores.broadcast_add(relative)?;
        }
        let probs = softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, h))?;
        let attended = layer_norm(
            &(linear(&context, &layer.attention_out)? + x)?,
            &layer.attention_norm,
        )?;
        let inner = activate(&linear(&attended, &layer.ffn_in)?, self.activation)?;
        layer_norm(
            &(linear(&inner, &layer.ffn_out)? + &attended)?,
            &layer.ffn_norm,
        )
    }
}

impl DeviceLayer {
    fn new(layer: &EncoderLayer, device: &Device) -> Result<Self> {
        Ok(DeviceLayer {
            qkv: device_linear(&layer.qkv, device)?,
            attention_out: device_linear(&layer.attention_out, device)?,
            attention_norm: norm(&layer.attention_norm, device)?,
            ffn_in: device_linear(&layer.ffn_in, device)?,
            ffn_out: device_linear(&layer.ffn_out, device)?,
            ffn_norm: norm(&layer.ffn_norm, device)?,
        })
    }
}

fn device_linear(linear: &Linear, device: &Device) -> Result<DeviceLinear> {
    Ok(DeviceLinear {
        weight_t: linear.weight_t.to_device(device)?,
        bias: Tensor::from_slice(&linear.bias, linear.bias.len(), device)?,
    })
}

fn norm(params: &NormParams, device: &Device) -> Result<DeviceNorm> {
    let n = params.weight.len();
    Ok(DeviceNorm {
        weight: Tensor::from_slice(&params.weight, n, device)?,
        bias: Tensor::from_slice(&params.bias, n, device)?,
        eps: params.eps,
    })
}

fn linear(x: &Tensor, layer: &DeviceLinear) -> Result<Tensor> {
    x.matmul(&layer.weight_t)?.broadcast_add(&layer.bias)
}

/// LayerNorm over the last dimension, two-pass (mean, then the variance of
/// the centred values), as the CPU kernel computes it.
fn layer_norm(x: &Tensor, norm: &DeviceNorm) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let scaled = centred.broadcast_div(&(variance + norm.eps as f64)?.sqrt()?)?;
    scaled
        .broadcast_mul(&norm.weight)?
        .broadcast_add(&norm.bias)
}

fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?;
    let e = shifted.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

fn activate(x: &Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
        Activation::Relu => x.relu(),
    }
}

/// The device a `device` parameter names: `cpu`, `cuda` (GPU 0) or
/// `cuda:N`.
pub fn parse_device(name: &str) -> std::result::Result<Device, String> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => {
                return Err(format!(
                    "device '{name}' is not `cpu`, `cuda` or `cuda:N` (N the GPU's number)"
                ))
            }
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "device '{name}': this build of the candle backend has no CUDA support; rebuild it with `cargo build --release --features cuda` on a machine with the CUDA toolkit (docs/GPU.md)"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| format!("device '{name}': cannot open the GPU: {e}"))
}
