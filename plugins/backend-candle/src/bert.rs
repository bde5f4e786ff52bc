//! BERT (and the BERT-architecture MiniLM): absolute positions, token-type
//! embeddings, the block of `encoder.rs` under BERT's tensor names.

use crate::config::BertConfig;
use crate::encoder::{
    load_norm, load_table, EncoderLayer, EncoderParts, EncoderShape, LayerNames, LayerSizes,
};
use crate::ops::Embeddings;
use crate::weights::WeightFile;

/// BERT's names under `encoder.layer.N.`.
pub(crate) const NAMES: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_out: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    ffn_norm: "output.LayerNorm",
};

pub(crate) fn load(config: &BertConfig, weights: &WeightFile) -> Result<EncoderParts, String> {
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
        token_type: Some(load_table(
            weights,
            "embeddings.token_type_embeddings.weight",
            config.type_vocab_size,
            hidden,
        )?),
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
    Ok(EncoderParts {
        shape: EncoderShape {
            architecture: "bert",
            num_layers: config.num_hidden_layers,
            hidden_size: hidden,
            num_heads: config.num_attention_heads,
            max_positions: config.max_position_embeddings,
            activation: config.hidden_act,
        },
        embeddings,
        position_offset: 0,
        layers,
        relative_bias: None,
    })
}
