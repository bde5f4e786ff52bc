//! The plugin's parameters, from the spec's YAML mapping (as JSON).

use std::path::{Path, PathBuf};

use ort::session::builder::GraphOptimizationLevel;
use serde::Deserialize;

/// Padded tokens per forward pass unless `batch_tokens` says otherwise (the
/// candle backend's default, so both batch alike).
const DEFAULT_BATCH_TOKENS: usize = 8192;
/// BERT's position table; the ONNX graph does not state it plainly.
const DEFAULT_MAX_LENGTH: usize = 512;

/// Parameters of the `onnx` backend; unknown names are an error so that a
/// typo does not silently fall back to a default.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OnnxParams {
    /// The .onnx file.
    pub model: PathBuf,
    /// Folder with tokenizer.json or vocab.txt (default: the model's folder).
    /// Relative paths are taken from the model file's folder, because the
    /// runner passes parameters through unresolved.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// The ONNX Runtime shared library (default: see [`crate::runtime`]).
    /// Relative paths are taken from the model file's folder.
    #[serde(default)]
    pub runtime: Option<PathBuf>,
    /// Intra-op threads (default: `RAYON_NUM_THREADS`, else ONNX Runtime's
    /// own choice, one per physical core).
    #[serde(default)]
    pub threads: Option<usize>,
    /// disable | basic | extended | all (default all).
    #[serde(default)]
    pub optimization: Option<String>,
    /// Longest sequence, specials included (default 512).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Most padded tokens per forward pass (default 8192).
    #[serde(default)]
    pub batch_tokens: Option<usize>,
    /// Tensor names of the hidden states, embeddings first (default: found
    /// in the graph).
    #[serde(default)]
    pub hidden_states: Option<Vec<String>>,
}

impl OnnxParams {
    pub fn from_json(json: &str) -> Result<Self, String> {
        sieve_core::parse_params(json).map_err(|e| format!("onnx backend: {e}"))
    }

    /// The model file, checked to exist.
    pub fn model_file(&self) -> Result<&Path, String> {
        if self.model.is_file() {
            Ok(&self.model)
        } else {
            Err(format!(
                "ONNX model file '{}' not found: `model` must be an .onnx file; for the test \
                 model run scripts/fetch-assets.sh onnx-minilm",
                self.model.display()
            ))
        }
    }

    fn model_dir(&self) -> PathBuf {
        match self.model.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// `path` as given if absolute, else relative to the model's folder.
    fn beside_model(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.model_dir().join(path)
        }
    }

    pub fn tokenizer_folder(&self) -> PathBuf {
        match &self.tokenizer {
            Some(dir) => self.beside_model(dir),
            None => self.model_dir(),
        }
    }

    pub fn runtime_path(&self) -> Option<PathBuf> {
        self.runtime.as_deref().map(|p| self.beside_model(p))
    }

    /// The model's name for reports: the file stem, or the folder's name
    /// when the file is the usual `model.onnx`.
    pub fn model_name(&self) -> String {
        let stem = self
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = self
            .model
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned());
        match folder {
            Some(folder) if stem == "model" || stem.is_empty() => folder,
            _ => stem,
        }
    }

    pub fn optimization_level(&self) -> Result<GraphOptimizationLevel, String> {
        match self.optimization.as_deref().unwrap_or("all") {
            "disable" => Ok(GraphOptimizationLevel::Disable),
            "basic" => Ok(GraphOptimizationLevel::Level1),
            "extended" => Ok(GraphOptimizationLevel::Level2),
            "all" => Ok(GraphOptimizationLevel::All),
            other => Err(format!(
                "optimization '{other}' is not one of disable, basic, extended, all"
            )),
        }
    }

    pub fn max_positions(&self) -> Result<usize, String> {
        match self.max_length.unwrap_or(DEFAULT_MAX_LENGTH) {
            n if n >= 3 => Ok(n),
            n => Err(format!(
                "max_length {n} must be at least 3 ([CLS] word [SEP])"
            )),
        }
    }

    pub fn batch_tokens(&self) -> usize {
        self.batch_tokens.unwrap_or(DEFAULT_BATCH_TOKENS).max(1)
    }

    /// `threads`, else `RAYON_NUM_THREADS` (the runner sets it from the
    /// spec's `threads`, so one setting bounds every backend), else `None`:
    /// ONNX Runtime's own choice.
    pub fn threads(&self) -> Result<Option<usize>, String> {
        match self.threads {
            Some(0) => Err("threads must be at least 1".into()),
            Some(n) => Ok(Some(n)),
            None => Ok(std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&n: &usize| n > 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_relative_paths_from_the_model() {
        let params = OnnxParams::from_json(
            r#"{"model": "/a/b/model.onnx", "tokenizer": "../tok", "runtime": "/lib/ort.so"}"#,
        )
        .expect("ok");
        assert_eq!(params.tokenizer_folder(), PathBuf::from("/a/b/../tok"));
        assert_eq!(params.runtime_path(), Some(PathBuf::from("/lib/ort.so")));
        assert_eq!(params.model_name(), "b");
        assert_eq!(params.max_positions(), Ok(512));
    }

    #[test]
    fn unknown_parameters_and_levels_are_errors() {
        let typo = OnnxParams::from_json(r#"{"model": "m.onnx", "thread": 2}"#);
        assert!(typo.expect_err("error").contains("thread"));
        let params =
            OnnxParams::from_json(r#"{"model": "m.onnx", "optimization": "max"}"#).expect("ok");
        assert!(params.optimization_level().is_err());
        assert_eq!(params.model_name(), "m");
    }
}
