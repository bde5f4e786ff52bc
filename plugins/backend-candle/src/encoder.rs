//! The encoder BERT and MPNet share: embeddings, then post-norm transformer
//! blocks, returning every layer's hidden state.
//!
//! Unlike candle-transformers' `BertModel` (last layer only), the forward
//! pass here keeps the embeddings' output and each encoder layer's output,
//! and stops after the last layer a request needs.
//!
//! The architectures differ only in how they are loaded (tensor names,
//! token types, the position offset; see `bert.rs` and `mpnet.rs`) and in
//! MPNet's relative-position bias on the attention scores. Weights are
//! rearranged once at load time for a fast CPU forward pass: Q, K and V are
//! fused into one `[hidden, 3 * hidden]` matrix (one GEMM instead of
//! three), every weight is stored transposed (`[in, out]`, contiguous, so
//! GEMMs read it row-major), and the attention scale `1/sqrt(head_size)` is
//! folded into the query weights.

use std::path::Path;

use candle_core::{DType, Device, Result as CandleResult, Tensor};
use serde::Deserialize;
use sieve_encoder_common::{HiddenStates, PaddedBatch};

use crate::config::{Activation, BertConfig};
use crate::mpnet::{MpnetConfig, RelativeAttentionBias};
use crate::ops::{self, Embeddings, HeadLayout, NormParams, RelativeBias};
use crate::weights::WeightFile;

/// What a loaded encoder is: the facts the backend reports and batches by.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderShape {
    /// `"bert"` or `"mpnet"`, from config.json's `model_type`.
    pub architecture: &'static str,
    /// Encoder layers K: hidden states `0..=K` exist.
    pub num_layers: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    /// Longest sequence in tokens, specials included. MPNet's position
    /// table is two rows longer (its positions start after the padding id).
    pub max_positions: usize,
    pub activation: Activation,
}

impl EncoderShape {
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

/// A dense layer with its weight stored `[in, out]`; the bias is added by
/// the fused op that follows the GEMM.
pub(crate) struct Linear {
    pub(crate) weight_t: Tensor,
    pub(crate) bias: Vec<f32>,
}

impl Linear {
    /// Loads an HF `nn.Linear` (`weight` is `[out, in]`).
    pub(crate) fn load(
        weights: &WeightFile,
        name: &str,
        inputs: usize,
        outputs: usize,
    ) -> Result<Self, String> {
        let weight = weights.get(&format!("{name}.weight"), &[outputs, inputs])?;
        let bias = weights.get(&format!("{name}.bias"), &[outputs])?;
        Self::from_out_in(&weight, bias).map_err(|e| format!("{name}: {e}"))
    }

    fn from_out_in(weight: &Tensor, bias: Tensor) -> CandleResult<Self> {
        Ok(Linear {
            weight_t: weight.t()?.contiguous()?,
            bias: bias.to_vec1()?,
        })
    }

    /// `x @ W^T` without the bias (callers fuse the bias into the next op).
    fn matmul(&self, x: &Tensor) -> CandleResult<Tensor> {
        x.matmul(&self.weight_t)
    }
}

pub(crate) fn load_norm(
    weights: &WeightFile,
    name: &str,
    size: usize,
    eps: f64,
) -> Result<NormParams, String> {
    let (weight, bias) = weights.layer_norm(name, size)?;
    let to_vec = |t: Tensor| t.to_vec1::<f32>().map_err(|e| format!("{name}: {e}"));
    Ok(NormParams {
        weight: to_vec(weight)?,
        bias: to_vec(bias)?,
        eps: eps as f32,
    })
}

/// A `[rows, cols]` table (embeddings, relative bias) as one row-major vector.
pub(crate) fn load_table(
    weights: &WeightFile,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>, String> {
    let table = weights.get(name, &[rows, cols])?;
    table
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .map_err(|e| format!("{name}: {e}"))
}

/// Where an architecture keeps a block's tensors, relative to
/// `encoder.layer.N.`.
pub(crate) struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_out: &'static str,
    pub attention_norm: &'static str,
    pub ffn_in: &'static str,
    pub ffn_out: &'static str,
    pub ffn_norm: &'static str,
}

/// The sizes a block is loaded with.
pub(crate) struct LayerSizes {
    pub hidden: usize,
    pub inner: usize,
    pub head_size: usize,
    pub eps: f64,
}

/// One transformer block: self-attention and feed-forward, each followed by
/// a residual connection and LayerNorm (post-norm, as in BERT and MPNet).
pub(crate) struct EncoderLayer {
    pub(crate) qkv: Linear,
    pub(crate) attention_out: Linear,
    pub(crate) attention_norm: NormParams,
    pub(crate) ffn_in: Linear,
    pub(crate) ffn_out: Linear,
    pub(crate) ffn_norm: NormParams,
}

impl EncoderLayer {
    pub(crate) fn load(
        weights: &WeightFile,
        names: &LayerNames,
        sizes: &LayerSizes,
        index: usize,
    ) -> Result<Self, String> {
        let (hidden, inner, eps) = (sizes.hidden, sizes.inner, sizes.eps);
        let name = |part: &str| format!("encoder.layer.{index}.{part}");
        Ok(EncoderLayer {
            qkv: fused_qkv(
                weights,
                [name(names.query), name(names.key), name(names.value)],
                sizes,
            )?,
            attention_out: Linear::load(weights, &name(names.attention_out), hidden, hidden)?,
            attention_norm: load_norm(weights, &name(names.attention_norm), hidden, eps)?,
            ffn_in: Linear::load(weights, &name(names.ffn_in), hidden, inner)?,
            ffn_out: Linear::load(weights, &name(names.ffn_out), inner, hidden)?,
            ffn_norm: load_norm(weights, &name(names.ffn_norm), hidden, eps)?,
        })
    }
}

/// Q, K, V as one `[hidden, 3 * hidden]` matrix, the query part scaled by
/// `1/sqrt(head_size)` so the scores need no separate scaling (MPNet adds
/// its position bias to the scaled scores, so the folding holds there too).
fn fused_qkv(
    weights: &WeightFile,
    [query, key, value]: [String; 3],
    sizes: &LayerSizes,
) -> Result<Linear, String> {
    let hidden = sizes.hidden;
    let scale = 1.0 / (sizes.head_size as f64).sqrt();
    let load = |name: &str| -> Result<(Tensor, Tensor), String> {
        let w = weights.get(&format!("{name}.weight"), &[hidden, hidden])?;
        let b = weights.get(&format!("{name}.bias"), &[hidden])?;
        Ok((w, b))
    };
    let ((qw, qb), (kw, kb), (vw, vb)) = (load(&query)?, load(&key)?, load(&value)?);
    let fuse = || -> CandleResult<Linear> {
        let weight = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
        let bias = Tensor::cat(&[(qb * scale)?, kb, vb], 0)?;
        Linear::from_out_in(&weight, bias)
    };
    fuse().map_err(|e| format!("{query}: cannot fuse query/key/value: {e}"))
}

/// The real tokens of a padded batch back to back, with their positions
/// within their sequence: the dense layers never compute padding.
struct PackedTokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    positions: Vec<u32>,
}

impl PackedTokens {
    /// Positions count from `position_offset` (0 for BERT).
    fn new(batch: &PaddedBatch, position_offset: u32) -> Self {
        let total = batch.real_tokens();
        let mut packed = PackedTokens {
            ids: Vec::with_capacity(total),
            type_ids: Vec::with_capacity(total),
            positions: Vec::with_capacity(total),
        };
        for (b, &length) in batch.lengths.iter().enumerate() {
            let row = b * batch.seq_len..b * batch.seq_len + length;
            packed.ids.extend_from_slice(&batch.input_ids[row.clone()]);
            packed.type_ids.extend_from_slice(&batch.type_ids[row]);
            packed
                .positions
                .extend(position_offset..position_offset + length as u32);
        }
        packed
    }
}

/// The parts of an encoder, as a loader assembles them.
pub(crate) struct EncoderParts {
    pub shape: EncoderShape,
    pub embeddings: Embeddings,
    /// Added to every position before the table lookup: MPNet's (and
    /// RoBERTa's) positions start after the padding id.
    pub position_offset: u32,
    pub layers: Vec<EncoderLayer>,
    pub relative_bias: Option<RelativeAttentionBias>,
}

/// The network: embeddings and encoder layers, fp32 on the CPU.
pub struct Encoder {
    parts: EncoderParts,
}

/// config.json, by architecture.
pub(crate) enum Config {
    Bert(BertConfig),
    Mpnet(MpnetConfig),
}

/// Just `model_type`, to choose the architecture before reading the rest.
#[derive(Deserialize)]
struct ModelType {
    #[serde(default)]
    model_type: Option<String>,
}

impl Config {
    /// Reads and checks `config.json` of a Hugging Face folder;
    /// `model_type` chooses the architecture (`mpnet`, else BERT).
    pub(crate) fn read(dir: &Path) -> Result<Self, String> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            format!(
                "cannot read '{}': {e}; the model folder needs the Hugging Face config.json",
                config_path.display()
            )
        })?;
        let kind = serde_json::from_str::<ModelType>(&text)
            .map_err(|e| format!("'{}' is not a model config: {e}", config_path.display()))?
            .model_type;
        Ok(match kind.as_deref() {
            Some("mpnet") => Config::Mpnet(MpnetConfig::from_json(&text, &config_path)?),
            _ => Config::Bert(BertConfig::from_json(&text, &config_path)?),
        })
    }
}

impl Encoder {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face
    /// folder; config.json's `model_type` chooses the architecture
    /// (`mpnet`, else BERT).
    pub fn load(dir: &Path) -> Result<Self, String> {
        // The config is checked before the weights are opened: its errors
        // are the more useful ones.
        let config = Config::read(dir)?;
        let weights = WeightFile::open(&dir.join("model.safetensors"))?;
        let parts = match &config {
            Config::Bert(config) => crate::bert::load(config, &weights)?,
            Config::Mpnet(config) => crate::mpnet::load(config, &weights)?,
        };
        Ok(Encoder { parts })
    }

    pub fn shape(&self) -> &EncoderShape {
        &self.parts.shape
    }

    pub(crate) fn parts(&self) -> &EncoderParts {
        &self.parts
    }

    /// Checks a batch against the model before a forward pass.
    pub(crate) fn check_batch(&self, batch: &PaddedBatch, last_layer: usize) -> Result<(), String> {
        let shape = &self.parts.shape;
        if last_layer > shape.num_layers {
            return Err(format!(
                "last_layer {last_layer} > {} layers",
                shape.num_layers
            ));
        }
        if !batch.needed.is_empty() && batch.needed.len() != batch.batch * batch.seq_len {
            return Err(format!(
                "the batch marks {} needed positions for {} x {} tokens",
                batch.needed.len(),
                batch.batch,
                batch.seq_len
            ));
        }
        if batch.seq_len > shape.max_positions || batch.real_tokens() == 0 {
            return Err(format!(
                "cannot encode a batch of sequences up to {} tokens (the model takes {})",
                batch.seq_len, shape.max_positions
            ));
        }
        Ok(())
    }

    /// Hidden states `0..=last_layer` of a padded batch (packed layout);
    /// only layers `1..=last_layer` are computed. Where `batch.needed` marks
    /// positions, the last layer's output projection and feed-forward run
    /// at those positions only, and its other rows are zero.
    pub fn hidden_states(
        &self,
        batch: &PaddedBatch,
        last_layer: usize,
    ) -> Result<HiddenStates, String> {
        self.check_batch(batch, last_layer)?;
        let shape = &self.parts.shape;
        let values = self
            .forward(batch, last_layer)
            .and_then(|states| copy_out(&states))
            .map_err(|e| format!("forward pass failed: {e}"))?;
        HiddenStates::packed(values, last_layer + 1, &batch.lengths, shape.hidden_size)
    }

    /// Every hidden state `[tokens, hidden]` (packed), embeddings first.
    fn forward(&self, batch: &PaddedBatch, last_layer: usize) -> CandleResult<Vec<Tensor>> {
        let parts = &self.parts;
        let layout = HeadLayout::new(
            &batch.lengths,
            parts.shape.num_heads,
            parts.shape.head_size(),
        );
        // MPNet: one bias table per batch, shared by every layer.
        let longest = batch.lengths.iter().copied().max().unwrap_or(0);
        let relative = parts.relative_bias.as_ref().map(|b| b.table(longest));
        let tokens = PackedTokens::new(batch, parts.position_offset);
        let mut x = ops::embed(
            &parts.embeddings,
            &tokens.ids,
            &tokens.type_ids,
            &tokens.positions,
        )?;
        let mut states = Vec::with_capacity(last_layer + 1);
        states.push(x.clone());
        let needed = needed_rows(batch)?;
        for (index, layer) in parts.layers[..last_layer].iter().enumerate() {
            let keep = if index + 1 == last_layer {
                needed.as_ref()
            } else {
                None
            };
            x = self.layer_forward(layer, &x, &layout, relative.as_ref(), keep)?;
            states.push(x.clone());
        }
        Ok(states)
    }

    /// One block on packed `x` `[tokens, hidden]`: attention, add & norm,
    /// feed-forward, add & norm. With `keep` (packed row indices), only
    /// those rows go through the output projection and the feed-forward
    /// (the last layer, whose other rows nobody reads); the rest are zero.
    fn layer_forward(
        &self,
        layer: &EncoderLayer,
        x: &Tensor,
        layout: &HeadLayout,
        relative: Option<&RelativeBias>,
        keep: Option<&Tensor>,
    ) -> CandleResult<Tensor> {
        let qkv = layer.qkv.matmul(x)?;
        let mut context = ops::attention(&qkv, &layer.qkv.bias, layout, relative)?;
        let mut x = x.clone();
        if let Some(rows) = keep {
            context = context.index_select(rows, 0)?;
            x = x.index_select(rows, 0)?;
        }
        // Every op below works in place on the fresh output of a GEMM.
        let attended = layer.attention_out.matmul(&context)?;
        let residual = Some((layer.attention_out.bias.as_slice(), &x));
        ops::add_norm(&attended, residual, &layer.attention_norm)?;
        let inner = layer.ffn_in.matmul(&attended)?;
        ops::bias_activation(&inner, &layer.ffn_in.bias, self.parts.shape.activation)?;
        let out = layer.ffn_out.matmul(&inner)?;
        let residual = Some((layer.ffn_out.bias.as_slice(), &attended));
        ops::add_norm(&out, residual, &layer.ffn_norm)?;
        match keep {
            Some(rows) => Tensor::zeros((layout.tokens(), out.dim(1)?), DType::F32, &Device::Cpu)?
                .index_add(rows, &out, 0),
            None => Ok(out),
        }
    }
}

/// Packed indices of the rows whose last-layer state is read, or `None`
/// when all are (nothing to skip) or none is (nothing to gather).
fn needed_rows(batch: &PaddedBatch) -> CandleResult<Option<Tensor>> {
    let mut rows = Vec::new();
    let mut packed = 0u32;
    for (b, &length) in batch.lengths.iter().enumerate() {
        for position in 0..length {
            if batch.is_needed(b, position) {
                rows.push(packed);
            }
            packed += 1;
        }
    }
    if rows.is_empty() || rows.len() == packed as usize {
        return Ok(None);
    }
    let count = rows.len();
    Tensor::from_vec(rows, count, &Device::Cpu).map(Some)
}

/// The hidden states as one layer-major vector (each state is contiguous).
fn copy_out(states: &[Tensor]) -> CandleResult<Vec<f32>> {
    let total = states.iter().map(Tensor::elem_count).sum();
    let mut values = Vec::with_capacity(total);
    for state in states {
        values.extend_from_slice(&state.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(values)
}
