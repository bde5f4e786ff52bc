//! MPNet (all-mpnet-base-v2 and other `model_type: mpnet` checkpoints).
//!
//! The blocks are BERT's (post-norm attention and feed-forward, loaded into
//! the shared block of `encoder.rs` under MPNet's tensor names); what
//! differs, following Hugging Face's `modeling_mpnet.py`:
//! - no token-type embeddings;
//! - absolute positions start after the padding id, as in RoBERTa:
//!   position `p` of a sequence reads row `p + 2` of the table, so a table of
//!   514 rows takes sequences of 512 tokens;
//! - a relative-position bias on the attention scores: the distance from
//!   query to key is put into one of 32 buckets (exact up to 8 tokens in
//!   each direction, logarithmic up to 128, then one bucket), each bucket
//!   has a learned bias per head (`encoder.relative_attention_bias`), and
//!   the same bias is added to the scaled scores of every layer.

use std::path::Path;

use serde::Deserialize;

use crate::config::Activation;
use crate::encoder::{
    load_norm, load_table, EncoderLayer, EncoderParts, EncoderShape, LayerNames, LayerSizes,
};
use crate::ops::{Embeddings, RelativeBias};
use crate::weights::WeightFile;

/// MPNet's padding id. Hugging Face fixes it in the embeddings (whatever
/// `pad_token_id` says) and numbers positions from `PADDING_IDX + 1`.
pub(crate) const PADDING_IDX: u32 = 1;

/// Buckets and the distance of the last one: Hugging Face's
/// `compute_position_bias` always uses these (not
/// `relative_attention_num_buckets`, which only sizes the table).
const BUCKETS: usize = 32;
const MAX_DISTANCE: usize = 128;

/// The fields of a Hugging Face MPNet `config.json` the encoder needs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct MpnetConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
}

fn default_hidden_act() -> Activation {
    Activation::Gelu
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_buckets() -> usize {
    BUCKETS
}

impl MpnetConfig {
    /// Parses and checks config.json's text; errors name `path`.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, String> {
        let config: MpnetConfig = serde_json::from_str(text)
            .map_err(|e| format!("'{}' is not an MPNet config: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("'{}': {e}", path.display()))?;
        Ok(config)
    }

    /// Rejects configurations this encoder would compute wrongly.
    pub fn check(&self) -> Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.max_position_embeddings <= PADDING_IDX as usize + 3 {
            return Err(format!(
                "max_position_embeddings {} leaves no room for a sequence after MPNet's \
                 position offset of {}",
                self.max_position_embeddings,
                PADDING_IDX + 1
            ));
        }
        if self.relative_attention_num_buckets < BUCKETS {
            return Err(format!(
                "relative_attention_num_buckets {} is below the {BUCKETS} buckets MPNet uses",
                self.relative_attention_num_buckets
            ));
        }
        Ok(())
    }

    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// MPNet's names under `encoder.layer.N.`.
pub(crate) const NAMES: LayerNames = LayerNames {
    query: "attention.attn.q",
    key: "attention.attn.k",
    value: "attention.attn.v",
    attention_out: "attention.attn.o",
    attention_norm: "attention.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    ffn_norm: "output.LayerNorm",
};

pub(crate) fn load(config: &MpnetConfig, weights: &WeightFile) -> Result<EncoderParts, String> {
    let hidden = config.hidden_size;
    let embeddings = Embeddings {
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
        token_type: None,
        norm: load_norm(
            weights,
            "embeddings.LayerNorm",
            hidden,
            config.layer_norm_eps,
        )?,
    };
    let sizes = LayerSizes {
        hidden,
        inner: config.intermediate_size,
        head_size: config.head_size(),
        eps: config.layer_norm_eps,
    };
    let layers = (0..config.num_hidden_layers)
        .map(|i| EncoderLayer::load(weights, &NAMES, &sizes, i))
        .collect::<Result<Vec<_>, _>>()?;
    let heads = config.num_attention_heads;
    let relative_bias = RelativeAttentionBias {
        weight: load_table(
            weights,
            "encoder.relative_attention_bias.weight",
            config.relative_attention_num_buckets,
            heads,
        )?,
        heads,
    };
    Ok(EncoderParts {
        shape: EncoderShape {
            architecture: "mpnet",
            num_layers: config.num_hidden_layers,
            hidden_size: hidden,
            num_heads: heads,
            max_positions: config.max_position_embeddings - (PADDING_IDX as usize + 1),
            activation: config.hidden_act,
        },
        embeddings,
        position_offset: PADDING_IDX + 1,
        layers,
        relative_bias: Some(relative_bias),
    })
}

/// The learned bias per bucket and head, `[buckets, heads]` row-major.
pub(crate) struct RelativeAttentionBias {
    weight: Vec<f32>,
    heads: usize,
}

impl RelativeAttentionBias {
    /// The bias of every head and relative position `-(max_len - 1) ..=
    /// max_len - 1`: computed once per batch, read by every layer.
    pub(crate) fn table(&self, max_len: usize) -> RelativeBias {
        let max_len = max_len.max(1);
        let width = 2 * max_len - 1;
        let mut values = vec![0f32; self.heads * width];
        let reach = max_len as i64 - 1;
        for (at, relative) in (-reach..=reach).enumerate() {
            let bucket = relative_position_bucket(relative);
            let row = &self.weight[bucket * self.heads..(bucket + 1) * self.heads];
            for (head, &bias) in row.iter().enumerate() {
                values[head * width + at] = bias;
            }
        }
        RelativeBias { values, max_len }
    }
}

/// The bucket of a key `relative` tokens after its query (negative:
/// before), as Hugging Face's `relative_position_bucket` (bidirectional,
/// 32 buckets, max distance 128): keys before or at the query use buckets
/// 0..16, keys after it 16..32; within each half, distances below 8 have
/// their own bucket and larger ones share logarithmically sized buckets up
/// to 128, beyond which everything is the last bucket. The logarithm is
/// taken in f32 as in the PyTorch original; at the exact bucket borders
/// (distances 16, 32, 64) every value involved is exact in f32.
fn relative_position_bucket(relative: i64) -> usize {
    let half = BUCKETS / 2;
    let max_exact = half / 2;
    let side = if relative > 0 { half } else { 0 };
    let distance = relative.unsigned_abs() as usize;
    if distance < max_exact {
        return side + distance;
    }
    let ratio =
        (distance as f32 / max_exact as f32).ln() / (MAX_DISTANCE as f32 / max_exact as f32).ln();
    let large = max_exact + (ratio * (half - max_exact) as f32) as usize;
    side + large.min(half - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buckets in closed form: for distance n >= 8, 8 + floor(2 *
    /// log2(n / 8)), i.e. the largest j with n^2 >= 2^(j + 6), capped at 15.
    fn exact_bucket(relative: i64) -> usize {
        let side = if relative > 0 { 16 } else { 0 };
        let n = relative.unsigned_abs();
        if n < 8 {
            return side + n as usize;
        }
        let j = (0..).take_while(|&j| n * n >= 1u64 << (j + 6)).last();
        side + (8 + j.expect("n >= 8 gives j >= 0")).min(15)
    }

    #[test]
    fn buckets_match_the_closed_form_at_every_distance() {
        for relative in -600..=600 {
            assert_eq!(
                relative_position_bucket(relative),
                exact_bucket(relative),
                "relative position {relative}"
            );
        }
        // The borders themselves.
        let buckets: Vec<usize> = [0, -1, -7, -8, -15, -16, -31, -32, -63, -64, -90, -91, -128]
            .iter()
            .map(|&r| relative_position_bucket(r))
            .collect();
        assert_eq!(buckets, [0, 1, 7, 8, 9, 10, 11, 12, 13, 14, 14, 15, 15]);
        assert_eq!(relative_position_bucket(1), 17);
        assert_eq!(relative_position_bucket(64), 30);
        assert_eq!(relative_position_bucket(1000), 31);
    }

    #[test]
    fn the_table_holds_each_heads_bias_by_relative_position() {
        let heads = 3;
        let weight: Vec<f32> = (0..BUCKETS * heads).map(|i| i as f32).collect();
        let bias = RelativeAttentionBias { weight, heads };
        let table = bias.table(20);
        let width = 39;
        assert_eq!(table.values.len(), heads * width);
        for head in 0..heads {
            for relative in -19i64..=19 {
                let at = head * width + (relative + 19) as usize;
                let bucket = relative_position_bucket(relative);
                assert_eq!(table.values[at], (bucket * heads + head) as f32);
            }
        }
    }

    #[test]
    fn reads_the_all_mpnet_base_v2_config() {
        let text = r#"{"architectures": ["MPNetForMaskedLM"], "hidden_act": "gelu",
            "hidden_size": 768, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
            "max_position_embeddings": 514, "model_type": "mpnet", "num_attention_heads": 12,
            "num_hidden_layers": 12, "pad_token_id": 1, "relative_attention_num_buckets": 32,
            "vocab_size": 30527}"#;
        let config = MpnetConfig::from_json(text, Path::new("config.json")).expect("config");
        assert_eq!((config.num_hidden_layers, config.head_size()), (12, 64));
        let few = text.replace(
            "\"relative_attention_num_buckets\": 32",
            "\"relative_attention_num_buckets\": 16",
        );
        let message = MpnetConfig::from_json(&few, Path::new("config.json")).expect_err("error");
        assert!(message.contains("16"), "{message}");
    }
}
