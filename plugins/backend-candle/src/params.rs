//! The plugin's parameters, from the spec's YAML mapping (as JSON).

use std::path::PathBuf;

use serde::Deserialize;

/// Padded tokens per forward pass unless `batch_tokens` says otherwise:
/// large enough for efficient GEMMs, small enough that attention scores of
/// 512-token sequences stay around a hundred megabytes.
const DEFAULT_BATCH_TOKENS: usize = 8192;

/// Parameters of the `candle` backend; unknown names are an error so that a
/// typo does not silently fall back to a default.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CandleParams {
    /// Hugging Face model folder.
    pub model: PathBuf,
    /// Longest sequence, specials included (default: the model's maximum).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Most padded tokens per forward pass (default 8192).
    #[serde(default)]
    pub batch_tokens: Option<usize>,
    /// Threads for the forward pass (default: rayon's global pool).
    #[serde(default)]
    pub threads: Option<usize>,
    /// `cpu` (default), `cuda` or `cuda:N`; a GPU needs a build with the
    /// `cuda` feature.
    #[serde(default)]
    pub device: Option<String>,
}

impl CandleParams {
    pub fn from_json(json: &str) -> Result<Self, String> {
        sieve_core::parse_params(json).map_err(|e| format!("candle backend: {e}"))
    }

    /// The model folder, checked to exist.
    pub fn model_folder(&self) -> Result<PathBuf, String> {
        if self.model.is_dir() {
            Ok(self.model.clone())
        } else {
            Err(format!(
                "model folder '{}' not found: `model` must be a Hugging Face model folder \
                 (config.json, model.safetensors, tokenizer.json or vocab.txt); for the test \
                 model run scripts/fetch-assets.sh",
                self.model.display()
            ))
        }
    }

    /// The folder's name, shown in reports.
    pub fn model_name(&self) -> String {
        self.model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.model.display().to_string())
    }

    /// `max_length` checked against the longest sequence the model takes.
    pub fn max_positions(&self, model_maximum: usize) -> Result<usize, String> {
        match self.max_length {
            None => Ok(model_maximum),
            Some(n) if (3..=model_maximum).contains(&n) => Ok(n),
            Some(n) => Err(format!(
                "max_length {n} must be between 3 and the model's longest sequence \
                 ({model_maximum} tokens)"
            )),
        }
    }

    pub fn batch_tokens(&self) -> usize {
        self.batch_tokens.unwrap_or(DEFAULT_BATCH_TOKENS).max(1)
    }

    /// A dedicated pool when `threads` is given.
    pub fn thread_pool(&self) -> Result<Option<rayon::ThreadPool>, String> {
        let Some(threads) = self.threads else {
            return Ok(None);
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map(Some)
            .map_err(|e| format!("cannot start {threads} backend threads: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_parameters() {
        let params = CandleParams::from_json(r#"{"model": "m", "max_length": 128}"#).expect("ok");
        assert_eq!(params.max_positions(512), Ok(128));
        assert_eq!(params.batch_tokens(), DEFAULT_BATCH_TOKENS);
        assert_eq!(params.model_name(), "m");
    }

    #[test]
    fn unknown_or_missing_parameters_are_errors() {
        let typo = CandleParams::from_json(r#"{"model": "m", "max_lenght": 128}"#);
        assert!(typo.expect_err("error").contains("max_lenght"));
        assert!(CandleParams::from_json(r#"{"max_length": 128}"#).is_err());
    }

    #[test]
    fn max_length_above_the_model_is_an_error() {
        let params = CandleParams::from_json(r#"{"model": "m", "max_length": 1024}"#).expect("ok");
        assert!(params.max_positions(512).is_err());
    }

    #[test]
    fn a_missing_folder_says_what_to_do() {
        let params = CandleParams::from_json(r#"{"model": "/no/such/folder"}"#).expect("ok");
        let message = params.model_folder().expect_err("error");
        assert!(message.contains("/no/such/folder") && message.contains("config.json"));
    }
}
