//! The backend's `validate`: the model folder checked against itself
//! before any work, from config.json and the safetensors header alone.
//!
//! Loading a model whose config.json disagrees with its weights fails on
//! the first tensor of the wrong shape, but a config with FEWER layers than
//! the weights loads without a word and silently probes a truncated model.
//! Here every tensor the encoder reads is checked by name and shape (hidden
//! size, intermediate size, vocabulary, positions, layers), and a layer
//! beyond `num_hidden_layers` is an error too.

use std::path::Path;

use crate::encoder::{Config, LayerNames};
use crate::weights::WeightFile;

/// The architecture's sizes, as far as the tensor shapes are concerned.
struct Sizes<'a> {
    names: &'a LayerNames,
    hidden: usize,
    inner: usize,
    layers: usize,
    vocab: usize,
    positions: usize,
}

/// Checks config.json against model.safetensors in `dir`; returns the
/// longest sequence the model takes (for `max_length`).
pub fn check_model(dir: &Path) -> Result<usize, String> {
    let config = Config::read(dir)?;
    let weights = WeightFile::open(&dir.join("model.safetensors"))?;
    let (sizes, max_positions) = match &config {
        Config::Bert(c) => {
            weights.check_shape(
                "embeddings.token_type_embeddings.weight",
                &[c.type_vocab_size, c.hidden_size],
            )?;
            let sizes = Sizes {
                names: &crate::bert::NAMES,
                hidden: c.hidden_size,
                inner: c.intermediate_size,
                layers: c.num_hidden_layers,
                vocab: c.vocab_size,
                positions: c.max_position_embeddings,
            };
            (sizes, c.max_position_embeddings)
        }
        Config::Mpnet(c) => {
            weights.check_shape(
                "encoder.relative_attention_bias.weight",
                &[c.relative_attention_num_buckets, c.num_attention_heads],
            )?;
            let sizes = Sizes {
                names: &crate::mpnet::NAMES,
                hidden: c.hidden_size,
                inner: c.intermediate_size,
                layers: c.num_hidden_layers,
                vocab: c.vocab_size,
                positions: c.max_position_embeddings,
            };
            let offset = crate::mpnet::PADDING_IDX as usize + 1;
            (sizes, c.max_position_embeddings.saturating_sub(offset))
        }
    };
    check_tensors(&weights, &sizes)?;
    Ok(max_positions)
}

fn check_tensors(weights: &WeightFile, s: &Sizes<'_>) -> Result<(), String> {
    let (h, inner) = (s.hidden, s.inner);
    weights.check_shape("embeddings.word_embeddings.weight", &[s.vocab, h])?;
    weights.check_shape("embeddings.position_embeddings.weight", &[s.positions, h])?;
    for layer in 0..s.layers {
        let name = |part: &str, what: &str| format!("encoder.layer.{layer}.{part}.{what}");
        let n = s.names;
        for part in [n.query, n.key, n.value, n.attention_out] {
            weights.check_shape(&name(part, "weight"), &[h, h])?;
            weights.check_shape(&name(part, "bias"), &[h])?;
        }
        weights.check_shape(&name(n.ffn_in, "weight"), &[inner, h])?;
        weights.check_shape(&name(n.ffn_out, "weight"), &[h, inner])?;
    }
    let beyond = format!("encoder.layer.{}.{}.weight", s.layers, s.names.query);
    if weights.contains(&beyond) {
        return Err(format!(
            "config.json says num_hidden_layers: {}, but model.safetensors holds more layers \
             (it has '{beyond}'): the weights and config.json are of different models",
            s.layers
        ));
    }
    Ok(())
}
