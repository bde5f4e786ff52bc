//! A BERT encoder that returns every layer's hidden state.
//!
//! Unlike candle-transformers' `BertModel` (last layer only), the forward
//! pass here keeps the embeddings' output and each encoder layer's output,
//! and stops after the last layer a request needs.
//!
//! Weights are rearranged once at load time for a fast CPU forward pass:
//! Q, K and V are fused into one `[hidden, 3 * hidden]` matrix (one GEMM
//! instead of three), every weight is stored transposed (`[in, out]`,
//! contiguous, so GEMMs read it row-major), and the attention scale
//! `1/sqrt(head_size)` is folded into the query weights.

use std::path::Path;

use candle_core::{DType, Device, Result as CandleResult, Tensor};
use sieve_encoder_common::{HiddenStates, PaddedBatch};

use crate::config::BertConfig;
use crate::ops::{self, Embeddings, HeadLayout, NormParams};
use crate::weights::WeightFile;

/// A dense layer with its weight stored `[in, out]`; the bias is added by
/// the fused op that follows the GEMM.
struct Linear {
    weight_t: Tensor,
    bias: Vec<f32>,
}

impl Linear {
    /// Loads an HF `nn.Linear` (`weight` is `[out, in]`).
    fn load(
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

fn load_norm(
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

fn load_table(
    weights: &WeightFile,
    name: &str,
    rows: usize,
    hidden: usize,
) -> Result<Vec<f32>, String> {
    let table = weights.get(name, &[rows, hidden])?;
    table
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .map_err(|e| format!("{name}: {e}"))
}

fn load_embeddings(weights: &WeightFile, config: &BertConfig) -> Result<Embeddings, String> {
    let hidden = config.hidden_size;
    Ok(Embeddings {
        word: load_table(
            weights,
            "embeddings.word_embeddings.weight",
            config.vocab_size,
            hidden,
        )?,
        position: load_table(
            weights,
            "embeddings.position_embeddings.weight",
            config.max_position_embeddings,
            hidden,
        )?,
        token_type: load_table(
            weights,
            "embeddings.token_type_embeddings.weight",
            config.type_vocab_size,
            hidden,
        )?,
        norm: load_norm(
            weights,
            "embeddings.LayerNorm",
            hidden,
            config.layer_norm_eps,
        )?,
    })
}

/// The real tokens of a padded batch back to back, with their positions
/// within their sequence: the dense layers never compute padding.
struct PackedTokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    positions: Vec<u32>,
}

impl PackedTokens {
    fn new(batch: &PaddedBatch) -> Self {
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
            packed.positions.extend(0..length as u32);
        }
        packed
    }
}

/// One transformer block: self-attention and feed-forward, each followed by
/// a residual connection and LayerNorm (post-norm, as in BERT).
struct EncoderLayer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: NormParams,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: NormParams,
}

impl EncoderLayer {
    fn load(weights: &WeightFile, config: &BertConfig, index: usize) -> Result<Self, String> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let eps = config.layer_norm_eps;
        let name = format!("encoder.layer.{index}");
        Ok(EncoderLayer {
            qkv: fused_qkv(weights, &format!("{name}.attention.self"), config)?,
            attention_out: Linear::load(
                weights,
                &format!("{name}.attention.output.dense"),
                hidden,
                hidden,
            )?,
            attention_norm: load_norm(
                weights,
                &format!("{name}.attention.output.LayerNorm"),
                hidden,
                eps,
            )?,
            ffn_in: Linear::load(
                weights,
                &format!("{name}.intermediate.dense"),
                hidden,
                inner,
            )?,
            ffn_out: Linear::load(weights, &format!("{name}.output.dense"), inner, hidden)?,
            ffn_norm: load_norm(weights, &format!("{name}.output.LayerNorm"), hidden, eps)?,
        })
    }
}

/// Q, K, V as one `[hidden, 3 * hidden]` matrix, the query part scaled by
/// `1/sqrt(head_size)` so the scores need no separate scaling.
fn fused_qkv(weights: &WeightFile, name: &str, config: &BertConfig) -> Result<Linear, String> {
    let hidden = config.hidden_size;
    let scale = 1.0 / (config.head_size() as f64).sqrt();
    let load = |part: &str| -> Result<(Tensor, Tensor), String> {
        let w = weights.get(&format!("{name}.{part}.weight"), &[hidden, hidden])?;
        let b = weights.get(&format!("{name}.{part}.bias"), &[hidden])?;
        Ok((w, b))
    };
    let ((qw, qb), (kw, kb), (vw, vb)) = (load("query")?, load("key")?, load("value")?);
    let fuse = || -> CandleResult<Linear> {
        let weight = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
        let bias = Tensor::cat(&[(qb * scale)?, kb, vb], 0)?;
        Linear::from_out_in(&weight, bias)
    };
    fuse().map_err(|e| format!("{name}: cannot fuse query/key/value: {e}"))
}

/// The network: embeddings and encoder layers, fp32 on the CPU.
pub struct BertEncoder {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
}

impl BertEncoder {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face folder.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let weights = WeightFile::open(&dir.join("model.safetensors"))?;
        Self::from_weights(config, &weights)
    }

    fn from_weights(config: BertConfig, weights: &WeightFile) -> Result<Self, String> {
        let embeddings = load_embeddings(weights, &config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| EncoderLayer::load(weights, &config, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BertEncoder {
            config,
            embeddings,
            layers,
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
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
        if last_layer > self.layers.len() {
            return Err(format!(
                "last_layer {last_layer} > {} layers",
                self.layers.len()
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
        if batch.seq_len > self.config.max_position_embeddings || batch.real_tokens() == 0 {
            return Err(format!(
                "cannot encode a batch of sequences up to {} tokens (max_position_embeddings {})",
                batch.seq_len, self.config.max_position_embeddings
            ));
        }
        let values = self
            .forward(batch, last_layer)
            .and_then(|states| copy_out(&states))
            .map_err(|e| format!("forward pass failed: {e}"))?;
        HiddenStates::packed(
            values,
            last_layer + 1,
            &batch.lengths,
            self.config.hidden_size,
        )
    }

    /// Every hidden state `[tokens, hidden]` (packed), embeddings first.
    fn forward(&self, batch: &PaddedBatch, last_layer: usize) -> CandleResult<Vec<Tensor>> {
        let layout = HeadLayout::new(
            &batch.lengths,
            self.config.num_attention_heads,
            self.config.head_size(),
        );
        let tokens = PackedTokens::new(batch);
        let mut x = ops::embed(
            &self.embeddings,
            &tokens.ids,
            &tokens.type_ids,
            &tokens.positions,
        )?;
        let mut states = Vec::with_capacity(last_layer + 1);
        states.push(x.clone());
        let needed = needed_rows(batch)?;
        for (index, layer) in self.layers[..last_layer].iter().enumerate() {
            let keep = if index + 1 == last_layer {
                needed.as_ref()
            } else {
                None
            };
            x = self.layer_forward(layer, &x, &layout, keep)?;
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
        keep: Option<&Tensor>,
    ) -> CandleResult<Tensor> {
        let mut context = attention(layer, x, layout)?;
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
        ops::bias_activation(&inner, &layer.ffn_in.bias, self.config.hidden_act)?;
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

/// Multi-head self-attention; returns the heads' context
/// `[tokens, hidden]` before the output projection, each sequence at its
/// own length.
fn attention(layer: &EncoderLayer, x: &Tensor, layout: &HeadLayout) -> CandleResult<Tensor> {
    ops::attention(&layer.qkv.matmul(x)?, &layer.qkv.bias, layout)
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
