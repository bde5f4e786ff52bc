//! The model's `config.json`, mirroring Hugging Face's `BertConfig`
//! (MPNet's is in `mpnet.rs`).

use std::path::Path;

use serde::Deserialize;

/// The fields of a Hugging Face BERT `config.json` the encoder needs; other
/// fields (dropout, architectures, ...) are ignored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

/// The feed-forward activation, by its Hugging Face name.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x * Phi(x)` with the error function (HF `"gelu"`).
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation (HF `"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(alias = "gelu_new", rename = "gelu_pytorch_tanh")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
}

fn default_hidden_act() -> Activation {
    Activation::Gelu
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_type_vocab_size() -> usize {
    2
}

impl BertConfig {
    /// Reads and checks `config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read '{}': {e}; the model folder needs the Hugging Face config.json",
                path.display()
            )
        })?;
        Self::from_json(&text, path)
    }

    /// Parses and checks config.json's text; errors name `path`.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, String> {
        let config: BertConfig = serde_json::from_str(text)
            .map_err(|e| format!("'{}' is not a BERT config: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("'{}': {e}", path.display()))?;
        Ok(config)
    }

    /// Rejects configurations this encoder would compute wrongly.
    pub fn check(&self) -> Result<(), String> {
        if let Some(kind) = self.model_type.as_deref() {
            // RoBERTa-style models offset their positions: they would load
            // but compute the wrong thing. (MPNet has its own config.)
            if kind != "bert" {
                return Err(format!(
                    "model_type '{kind}' is not supported by the candle backend \
                     (supported: bert, mpnet)"
                ));
            }
        }
        if let Some(kind) = self.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(format!("position_embedding_type '{kind}' is not supported"));
            }
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }

    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"architectures": ["BertModel"], "hidden_act": "gelu",
        "hidden_size": 384, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 6, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": 30522}"#;

    #[test]
    fn reads_a_hugging_face_config() {
        let config: BertConfig = serde_json::from_str(MINILM).expect("config");
        config.check().expect("valid");
        assert_eq!(config.hidden_act, Activation::Gelu);
        assert_eq!((config.num_hidden_layers, config.head_size()), (6, 32));
    }

    #[test]
    fn rejects_what_it_cannot_compute() {
        let relative = MINILM.replace("\"absolute\"", "\"relative_key\"");
        let config: BertConfig = serde_json::from_str(&relative).expect("parses");
        assert!(config.check().is_err());
        let unknown = MINILM.replace("\"gelu\"", "\"swish\"");
        assert!(serde_json::from_str::<BertConfig>(&unknown).is_err());
    }
}
