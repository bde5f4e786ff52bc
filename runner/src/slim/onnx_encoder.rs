//! The onnx backend's encoder, cut after hidden state L: `model.onnx`
//! whose graph outputs are hidden states `0..=L` and which holds only the
//! nodes and weights they need, plus the tokenizer files.
//!
//! The graph code is the plugin's own (`sieve-onnx-graph`): the hidden
//! states are found as a run finds them (the `hidden_states` parameter,
//! else graph outputs, else the layer norms of a post-LN encoder), and the
//! pruning is the one the plugin applies in memory for a truncated pass.
//! The runner never links ONNX Runtime; the exported graph is first run
//! by the plugin when the slim model is opened.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use sieve_onnx_graph::{find_hidden_states, needed_nodes, truncated_model, OnnxModel};

use super::candle_encoder::copy_tokenizer;

/// The file name of the exported graph inside `encoder/`.
pub const ONNX_FILE: &str = "model.onnx";

/// What the pruned graph kept, and the parameters that open it.
#[derive(Debug, Clone)]
pub struct PrunedOnnx {
    /// Encoder layers of the source graph.
    pub source_layers: u32,
    pub kept_nodes: usize,
    pub source_nodes: usize,
    pub source_bytes: u64,
    pub written_bytes: u64,
    /// The run's parameters for the exported graph: `hidden_states` names
    /// its outputs (so the plugin takes them as they are), the tokenizer is
    /// the copy beside it, and a `runtime` path is made absolute.
    pub backend_params: Map<String, Value>,
}

/// Writes `source` (an .onnx file), cut after hidden state `last_layer`,
/// as `target_dir/model.onnx` with the tokenizer the run used.
pub fn write_pruned_onnx(
    source: &Path,
    params: &Map<String, Value>,
    target_dir: &Path,
    last_layer: u32,
) -> Result<PrunedOnnx> {
    let bytes = std::fs::read(source)
        .with_context(|| format!("cannot read the run's ONNX model {}", source.display()))?;
    let source_bytes = bytes.len() as u64;
    let model =
        OnnxModel::parse(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
    if let Some(name) = model.external_initializers.first() {
        bail!(
            "{}: the weight '{name}' (and {} more) is stored in a separate external-data file; `sieve export` writes one self-contained model.onnx and does not copy external data (save the model with its weights inside, e.g. onnx.save(model, path, save_as_external_data=False))",
            source.display(),
            model.external_initializers.len() - 1
        );
    }
    let explicit = explicit_hidden_states(params)?;
    let hidden = find_hidden_states(&model, explicit.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
    let source_layers = hidden.num_layers() as u32;
    if last_layer > source_layers {
        bail!(
            "{} has hidden states 0..={source_layers}, but the selection needs hidden state {last_layer}",
            source.display()
        );
    }
    let kept = &hidden.names[..=last_layer as usize];
    let kept_nodes = needed_nodes(&model, kept).iter().filter(|&&k| k).count();
    let pruned = truncated_model(&model, &hidden, last_layer as usize);
    let target = target_dir.join(ONNX_FILE);
    std::fs::write(&target, &pruned)
        .with_context(|| format!("cannot write {}", target.display()))?;

    let model_dir = parent_dir(source);
    let tokenizer_dir = match params.get("tokenizer") {
        Some(Value::String(dir)) => beside(&model_dir, Path::new(dir)),
        Some(other) => bail!("the run's backend parameter `tokenizer` is {other}, not a path"),
        None => model_dir.clone(),
    };
    copy_tokenizer(&tokenizer_dir, target_dir)?;

    let mut backend_params = params.clone();
    // The tokenizer is now beside the graph, the plugin's default.
    backend_params.remove("tokenizer");
    if let Some(runtime) = params.get("runtime") {
        let Value::String(path) = runtime else {
            bail!("the run's backend parameter `runtime` is {runtime}, not a path");
        };
        // Relative paths are read from the model's folder, which is now
        // the slim model's: keep pointing at the library the run used.
        let absolute = beside(&model_dir, Path::new(path));
        backend_params.insert(
            "runtime".into(),
            absolute.to_string_lossy().into_owned().into(),
        );
    }
    backend_params.insert(
        "hidden_states".into(),
        Value::Array(kept.iter().map(|n| Value::String(n.clone())).collect()),
    );
    Ok(PrunedOnnx {
        source_layers,
        kept_nodes,
        source_nodes: model.nodes.len(),
        source_bytes,
        written_bytes: pruned.len() as u64,
        backend_params,
    })
}

/// The run's `hidden_states` parameter, if it names them.
fn explicit_hidden_states(params: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let Some(value) = params.get("hidden_states") else {
        return Ok(None);
    };
    let names: Option<Vec<String>> = value.as_array().and_then(|items| {
        items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    names.map(Some).with_context(|| {
        format!(
            "the run's backend parameter `hidden_states` is {value}, not a list of tensor names"
        )
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` if absolute, else relative to `dir` (the plugin's rule for its
/// path parameters).
fn beside(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_states_must_be_a_list_of_names() {
        let mut params = Map::new();
        assert_eq!(explicit_hidden_states(&params).unwrap(), None);
        params.insert("hidden_states".into(), serde_json::json!(["a", "b"]));
        assert_eq!(
            explicit_hidden_states(&params).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        params.insert("hidden_states".into(), serde_json::json!("a"));
        assert!(explicit_hidden_states(&params).is_err());
    }

    #[test]
    fn relative_paths_are_read_from_the_models_folder() {
        assert_eq!(
            beside(Path::new("/m"), Path::new("../tok")),
            PathBuf::from("/m/../tok")
        );
        assert_eq!(
            beside(Path::new("/m"), Path::new("/lib/ort.so")),
            PathBuf::from("/lib/ort.so")
        );
        assert_eq!(parent_dir(Path::new("model.onnx")), PathBuf::from("."));
    }
}
