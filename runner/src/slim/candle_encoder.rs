//! The candle backend's encoder folder, truncated after hidden state L:
//! `model.safetensors` with the embeddings and encoder layers `0..L` only,
//! and `config.json` saying `num_hidden_layers: L`.
//!
//! Hidden state 0 is the embeddings' output and hidden state `l` the output
//! of encoder layer `l - 1`, so hidden states `0..=L` need the embeddings
//! and layers `0..L`. MPNet's relative-position bias
//! (`encoder.relative_attention_bias`) belongs to the encoder as a whole
//! and is read by every layer, so it is kept. The pooler and any task head
//! are dropped: the backend never reads them (see
//! plugins/backend-candle/src/weights.rs). With L = 0 no layer is kept: the
//! backend loads `num_hidden_layers: 0` (an empty layer list) and returns
//! the embeddings' output as hidden state 0.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::SafeTensors;

/// The weights file and config the candle backend reads.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

/// Tokenizer files of a Hugging Face folder the backend may read
/// (tokenizer.json, else vocab.txt with the lowercase setting from
/// tokenizer_config.json); the others of a model folder (READMEs, other
/// weight formats, sentence-transformers settings) are not copied.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Name prefixes of checkpoints saved from a task model; the backend
/// accepts these or none (weights.rs).
const PREFIXES: &[&str] = &["bert.", "mpnet."];

/// What a truncation kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// Encoder layers of the source (`num_hidden_layers`).
    pub source_layers: u32,
    /// Encoder layers kept (L).
    pub kept_layers: u32,
    pub kept_tensors: usize,
    pub dropped_tensors: usize,
    /// Byte sizes of the source and the written weights file.
    pub source_bytes: u64,
    pub written_bytes: u64,
}

/// Writes the encoder of the model folder `source` truncated to `layers`
/// encoder layers into the folder `target` (which must exist): config.json,
/// model.safetensors and the tokenizer files.
pub fn write_truncated_encoder(source: &Path, target: &Path, layers: u32) -> Result<Truncated> {
    let source_layers =
        truncate_config(&source.join(CONFIG_FILE), &target.join(CONFIG_FILE), layers)?;
    let mut truncated = truncate_weights(
        &source.join(WEIGHTS_FILE),
        &target.join(WEIGHTS_FILE),
        layers,
    )?;
    truncated.source_layers = source_layers;
    copy_tokenizer(source, target)?;
    Ok(truncated)
}

/// Copies the tokenizer files of the folder `source` into `target`; one of
/// tokenizer.json and vocab.txt must be there.
pub fn copy_tokenizer(source: &Path, target: &Path) -> Result<()> {
    let mut tokenizer_found = false;
    for name in TOKENIZER_FILES {
        let from = source.join(name);
        if from.is_file() {
            std::fs::copy(&from, target.join(name))
                .with_context(|| format!("cannot copy {} into the slim model", from.display()))?;
            tokenizer_found |= *name == "tokenizer.json" || *name == "vocab.txt";
        }
    }
    if !tokenizer_found {
        bail!(
            "the tokenizer folder {} has neither tokenizer.json nor vocab.txt; the slim model needs the tokenizer the run used",
            source.display()
        );
    }
    Ok(())
}

/// Copies a Hugging Face config.json with `num_hidden_layers` set to
/// `layers`, every other field unchanged. Returns the source's layer count.
pub fn truncate_config(source: &Path, target: &Path, layers: u32) -> Result<u32> {
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("cannot read the model's config {}", source.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", source.display()))?;
    let object = config
        .as_object_mut()
        .with_context(|| format!("{} is not a JSON object", source.display()))?;
    let source_layers = object
        .get("num_hidden_layers")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| {
            format!(
                "{} has no integer field `num_hidden_layers`; is it a BERT or MPNet config?",
                source.display()
            )
        })?;
    if u64::from(layers) > source_layers {
        bail!(
            "cannot keep {layers} encoder layers: {} says the model has {source_layers}",
            source.display()
        );
    }
    object.insert("num_hidden_layers".into(), layers.into());
    let text = serde_json::to_string_pretty(&config)?;
    std::fs::write(target, text + "\n")
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(source_layers as u32)
}

/// Copies the tensors of a BERT or MPNet `model.safetensors` that hidden
/// states `0..=layers` need (the raw bytes, dtype unchanged) into `target`,
/// keeping the file's `__metadata__`.
pub fn truncate_weights(source: &Path, target: &Path, layers: u32) -> Result<Truncated> {
    let file = std::fs::File::open(source)
        .with_context(|| format!("cannot open the model weights {}", source.display()))?;
    // SAFETY: the map is only read, and dropped before this function
    // returns; the source is a model file nobody writes during an export.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot map {}", source.display()))?;
    let tensors = SafeTensors::deserialize(&map)
        .with_context(|| format!("{} is not a valid safetensors file", source.display()))?;
    let (_, header) = SafeTensors::read_metadata(&map)
        .with_context(|| format!("{} is not a valid safetensors file", source.display()))?;
    let names = tensors.names();
    let prefix = PREFIXES
        .iter()
        .copied()
        .find(|p| names.contains(&format!("{p}embeddings.word_embeddings.weight").as_str()))
        .unwrap_or("");
    let embeddings = format!("{prefix}embeddings.word_embeddings.weight");
    if !names.contains(&embeddings.as_str()) {
        bail!(
            "{} holds no tensor 'embeddings.word_embeddings.weight' (with or without a bert./mpnet. prefix); it is not a BERT or MPNet checkpoint the candle backend reads",
            source.display()
        );
    }
    let mut kept = Vec::new();
    let mut present_layers = BTreeSet::new();
    for (name, view) in tensors.iter() {
        let Some(local) = name.strip_prefix(prefix) else {
            continue;
        };
        match tensor_role(local) {
            Role::Embeddings | Role::EncoderShared => kept.push((name.to_string(), view)),
            Role::Layer(index) if index < layers => {
                present_layers.insert(index);
                kept.push((name.to_string(), view));
            }
            Role::Layer(_) | Role::Other => {}
        }
    }
    if let Some(missing) = (0..layers).find(|l| !present_layers.contains(l)) {
        bail!(
            "{} has no tensors for encoder layer {missing} ('{prefix}encoder.layer.{missing}.*'), which the slim model needs",
            source.display()
        );
    }
    let kept_tensors = kept.len();
    let dropped_tensors = names.len() - kept_tensors;
    safetensors::serialize_to_file(kept, header.metadata().clone(), target)
        .with_context(|| format!("cannot write the truncated weights {}", target.display()))?;
    // The crate writes through a private temporary file (mode 0600); the
    // model is meant to be shared like its source.
    let permissions = file
        .metadata()
        .with_context(|| format!("cannot read the permissions of {}", source.display()))?
        .permissions();
    std::fs::set_permissions(target, permissions)
        .with_context(|| format!("cannot set the permissions of {}", target.display()))?;
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Truncated {
        source_layers: 0,
        kept_layers: layers,
        kept_tensors,
        dropped_tensors,
        source_bytes: size(source),
        written_bytes: size(target),
    })
}

/// What a tensor (name without the checkpoint prefix) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `embeddings.*` (word, position, token-type tables, LayerNorm).
    Embeddings,
    /// `encoder.*` outside the layers: MPNet's relative attention bias.
    EncoderShared,
    /// `encoder.layer.N.*`.
    Layer(u32),
    /// The pooler, task heads, anything else the backend does not read.
    Other,
}

fn tensor_role(name: &str) -> Role {
    if name.starts_with("embeddings.") {
        return Role::Embeddings;
    }
    let Some(rest) = name.strip_prefix("encoder.") else {
        return Role::Other;
    };
    match rest.strip_prefix("layer.") {
        Some(layer) => layer
            .split('.')
            .next()
            .and_then(|n| n.parse().ok())
            .map_or(Role::Other, Role::Layer),
        None => Role::EncoderShared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    /// A fake checkpoint: every tensor holds 4 f32 bytes per element.
    fn write_checkpoint(path: &Path, names: &[&str]) {
        let data = vec![0u8; 8];
        let views: Vec<(String, TensorView)> = names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    TensorView::new(Dtype::F32, vec![2], &data).unwrap(),
                )
            })
            .collect();
        let metadata = Some([("format".to_string(), "pt".to_string())].into());
        safetensors::serialize_to_file(views, metadata, path).unwrap();
    }

    fn names_in(path: &Path) -> Vec<String> {
        let bytes = std::fs::read(path).unwrap();
        let tensors = SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = tensors.names().iter().map(|s| s.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn roles_of_bert_and_mpnet_names() {
        assert_eq!(tensor_role("embeddings.LayerNorm.weight"), Role::Embeddings);
        assert_eq!(
            tensor_role("encoder.layer.11.attention.attn.q.weight"),
            Role::Layer(11)
        );
        assert_eq!(
            tensor_role("encoder.relative_attention_bias.weight"),
            Role::EncoderShared
        );
        assert_eq!(tensor_role("pooler.dense.weight"), Role::Other);
        assert_eq!(tensor_role("cls.predictions.bias"), Role::Other);
    }

    #[test]
    fn keeps_embeddings_shared_bias_and_the_first_layers_only() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.safetensors");
        write_checkpoint(
            &source,
            &[
                "mpnet.embeddings.word_embeddings.weight",
                "mpnet.encoder.relative_attention_bias.weight",
                "mpnet.encoder.layer.0.output.dense.weight",
                "mpnet.encoder.layer.1.output.dense.weight",
                "mpnet.encoder.layer.2.output.dense.weight",
                "mpnet.encoder.layer.10.output.dense.weight",
                "mpnet.pooler.dense.weight",
                "lm_head.bias",
            ],
        );
        let target = dir.path().join("two.safetensors");
        let truncated = truncate_weights(&source, &target, 2).unwrap();
        assert_eq!((truncated.kept_tensors, truncated.dropped_tensors), (4, 4));
        assert_eq!(
            names_in(&target),
            [
                "mpnet.embeddings.word_embeddings.weight",
                "mpnet.encoder.layer.0.output.dense.weight",
                "mpnet.encoder.layer.1.output.dense.weight",
                "mpnet.encoder.relative_attention_bias.weight",
            ]
        );
        assert!(truncated.written_bytes < truncated.source_bytes);
        // The file's own metadata survives.
        let bytes = std::fs::read(&target).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            header.metadata().as_ref().and_then(|m| m.get("format")),
            Some(&"pt".to_string())
        );

        let zero = dir.path().join("zero.safetensors");
        truncate_weights(&source, &zero, 0).unwrap();
        assert_eq!(
            names_in(&zero),
            [
                "mpnet.embeddings.word_embeddings.weight",
                "mpnet.encoder.relative_attention_bias.weight",
            ]
        );
    }

    #[test]
    fn a_missing_layer_or_embedding_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.safetensors");
        write_checkpoint(
            &source,
            &[
                "embeddings.word_embeddings.weight",
                "encoder.layer.0.output.dense.weight",
            ],
        );
        let target = dir.path().join("out.safetensors");
        let message = format!("{:#}", truncate_weights(&source, &target, 2).unwrap_err());
        assert!(message.contains("encoder layer 1"), "{message}");
        let headless = dir.path().join("headless.safetensors");
        write_checkpoint(&headless, &["encoder.layer.0.output.dense.weight"]);
        let message = format!("{:#}", truncate_weights(&headless, &target, 1).unwrap_err());
        assert!(message.contains("word_embeddings"), "{message}");
    }

    #[test]
    fn the_config_says_how_many_layers_were_kept() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("config.json");
        std::fs::write(
            &source,
            r#"{"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384}"#,
        )
        .unwrap();
        let target = dir.path().join("out.json");
        assert_eq!(truncate_config(&source, &target, 2).unwrap(), 6);
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
        assert_eq!(written["num_hidden_layers"], 2);
        assert_eq!(written["hidden_size"], 384);
        assert!(truncate_config(&source, &target, 7).is_err());
    }
}
