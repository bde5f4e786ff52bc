//! `manifest.json`: what a slim model folder holds and the sha256 of every
//! other file in it, checked before anything is loaded.
//!
//! The manifest covers itself too: `manifest_sha256` is the sha256 of its
//! own canonical content (every other field, keys sorted, compact JSON),
//! so an edited class name, neuron or pooling is refused instead of giving
//! wrong labels without a word. `source` is left out of it: it only points
//! `sieve bench --slim` at the run outside the folder, and moving that run
//! is a reason to edit it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::hashing::{canonical_json, sha256_hex};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Bumped when the folder's layout or meaning changes.
pub const SLIM_FORMAT: u32 = 1;

pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest's field holding the sha256 of its other content.
pub const MANIFEST_CHECKSUM: &str = "manifest_sha256";
/// Fields the manifest's own checksum leaves out (see the module notes).
const UNCHECKED_FIELDS: &[&str] = &[MANIFEST_CHECKSUM, "source"];
pub const CLASSIFIER_FILE: &str = "classifier.json";
/// The run's oracle probe (all features of every hidden state), for
/// `sieve bench --slim`; optional (older runs did not save it).
pub const ORACLE_FILE: &str = "oracle.json";
pub const ENCODER_DIR: &str = "encoder";

/// What a slim model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlimTask {
    /// One label per whitespace-separated word.
    Tagging,
    /// One label per line.
    Classification,
}

/// The manifest of a slim model folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlimManifest {
    /// Layout version ([`SLIM_FORMAT`]).
    pub format: u32,
    /// The sieve version that exported the folder.
    pub sieve_version: String,
    /// Backend plugin that runs the encoder.
    pub backend: String,
    /// The backend's parameters besides `model` (which is
    /// [`SlimManifest::encoder_model`] inside the folder).
    pub backend_params: serde_json::Map<String, serde_json::Value>,
    /// What the backend's `model` parameter points at, relative to the
    /// folder: `encoder` (candle: a model folder) or `encoder/model.onnx`.
    #[serde(default = "default_encoder_model")]
    pub encoder_model: String,
    /// Name of the encoder the run used (from its report), informative.
    pub model_name: String,
    /// How the encoder was reduced, in words: which layers were kept and
    /// what was dropped.
    pub encoder_note: String,
    pub task: SlimTask,
    /// `first`, `last` or `average`.
    pub subword_pooling: String,
    /// `cls` or `mean`.
    pub sentence_pooling: String,
    /// Sequences per forward pass.
    pub batch_size: u32,
    /// Hidden states 0..=last_layer are computed (the max selected layer).
    pub last_layer: u32,
    /// Hidden states of the full model the run used (embeddings included),
    /// e.g. 7 for a 6-layer encoder; the exported encoder keeps
    /// [`SlimManifest::kept_layers`] of its encoder layers.
    pub model_layers: u32,
    /// Encoder layers in `encoder/` (= `last_layer`: hidden state L is the
    /// output of layer L-1); `None` in folders whose encoder was copied
    /// whole (the first exports).
    #[serde(default)]
    pub kept_layers: Option<u32>,
    pub hidden: usize,
    /// [layer, neuron] of each classifier input, in input order.
    pub neurons: Vec<[u32; 2]>,
    /// Class names in classifier-output order.
    pub classes: Vec<String>,
    /// The run's test score of the selected-neuron probe, informative.
    #[serde(default)]
    pub run_test_score: Option<f64>,
    /// sha256 (hex) of every other file, by path relative to the folder
    /// with `/` separators.
    pub files: BTreeMap<String, String>,
    /// Where the folder came from, for `sieve bench --slim` only (predict
    /// never reads it, and it is not checksummed: it points outside).
    #[serde(default)]
    pub source: Option<SlimSource>,
}

/// The run and the full model a slim model was exported from: what
/// `sieve bench --slim` compares against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlimSource {
    /// The run's output folder (absolute); its spec names the test split.
    pub run_dir: String,
    /// The folder the run's relative paths were read from (absolute), so
    /// that the test split is found from any working directory.
    #[serde(default)]
    pub spec_dir: Option<String>,
    /// The full model as the run used it (absolute): a model folder or an
    /// .onnx file.
    pub model: String,
    /// The run's backend parameters besides `model`, unchanged (relative
    /// paths in them are read from the model's folder, as in the run).
    pub backend_params: serde_json::Map<String, serde_json::Value>,
}

fn default_encoder_model() -> String {
    ENCODER_DIR.to_string()
}

impl SlimManifest {
    /// Reads and checks `dir/manifest.json` and every file it lists: the
    /// format version first, then each checksum. Errors name the file and
    /// say to export again.
    pub fn load_verified(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: '{}' is not a slim model folder (make one with `sieve export RUN_DIR OUT_DIR`)",
                path.display(),
                dir.display()
            )
        })?;
        let manifest = Self::parse(&text, &path)?;
        manifest.verify_files(dir)?;
        Ok(manifest)
    }

    /// Parses a manifest's text, checking its format version before its
    /// fields so an old or future folder gets the version message.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).with_context(|| {
            format!(
                "{} is damaged (not valid JSON); re-export the model with `sieve export`",
                path.display()
            )
        })?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(format) if format == SLIM_FORMAT as u64 => {}
            Some(format) => bail!(
                "{} has slim model format {format}, but this sieve ({}) reads format {SLIM_FORMAT}; re-export the model with this version's `sieve export`",
                path.display(),
                env!("CARGO_PKG_VERSION")
            ),
            None => bail!(
                "{} has no format version; re-export the model with `sieve export`",
                path.display()
            ),
        }
        verify_own_checksum(&value, path)?;
        let manifest: Self = serde_json::from_value(value).with_context(|| {
            format!(
                "{} is damaged (fields missing or of the wrong type); re-export the model with `sieve export`",
                path.display()
            )
        })?;
        manifest.check_consistent(path)?;
        Ok(manifest)
    }

    fn check_consistent(&self, path: &Path) -> Result<()> {
        let problem = if self.neurons.is_empty() {
            Some("lists no neurons".to_string())
        } else if let Some(&[layer, neuron]) = self
            .neurons
            .iter()
            .find(|&&[l, n]| l > self.last_layer || n as usize >= self.hidden)
        {
            Some(format!(
                "lists neuron [{layer}, {neuron}] outside layers 0..={} x {} neurons",
                self.last_layer, self.hidden
            ))
        } else if self.classes.len() < 2 {
            Some("lists fewer than two classes".to_string())
        } else if !self.files.contains_key(CLASSIFIER_FILE) {
            Some(format!("does not list {CLASSIFIER_FILE}"))
        } else if self.encoder_model != ENCODER_DIR
            && !self.encoder_model.starts_with(&format!("{ENCODER_DIR}/"))
        {
            Some(format!(
                "names the encoder '{}', which is not inside {ENCODER_DIR}/",
                self.encoder_model
            ))
        } else if self.kept_layers.is_some_and(|kept| kept < self.last_layer) {
            Some(format!(
                "keeps {} encoder layers but needs hidden state {}",
                self.kept_layers.unwrap_or(0),
                self.last_layer
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => bail!(
                "{} {problem}; re-export the model with `sieve export`",
                path.display()
            ),
            None => Ok(()),
        }
    }

    /// Writes `dir/manifest.json` with its own checksum.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let mut value = serde_json::to_value(self)?;
        let checksum = content_checksum(&value);
        if let Some(object) = value.as_object_mut() {
            object.insert(MANIFEST_CHECKSUM.into(), checksum.into());
        }
        std::fs::write(&path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The path the backend's `model` parameter gets: the encoder folder or
    /// file inside `dir` (checked to stay inside it).
    pub fn encoder_path(&self, dir: &Path) -> Result<PathBuf> {
        listed_path(dir, &self.encoder_model)
    }

    /// Checks that every listed file exists with its recorded sha256.
    pub fn verify_files(&self, dir: &Path) -> Result<()> {
        for (relative, expected) in &self.files {
            let path = listed_path(dir, relative)?;
            if !path.is_file() {
                bail!(
                    "slim model file {} is missing; re-export the model with `sieve export`",
                    path.display()
                );
            }
            let actual = sha256_file(&path)?;
            if &actual != expected {
                bail!(
                    "slim model file {} is corrupted or was modified (sha256 {actual}, manifest says {expected}); re-export the model with `sieve export`",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// sha256 (hex) of a manifest's canonical content: every field but
/// [`UNCHECKED_FIELDS`], keys sorted at every level, compact JSON.
fn content_checksum(manifest: &serde_json::Value) -> String {
    let kept = match manifest.as_object() {
        Some(object) => serde_json::Value::Object(
            object
                .iter()
                .filter(|(key, _)| !UNCHECKED_FIELDS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        None => manifest.clone(),
    };
    // Serialising a JSON value cannot fail.
    sha256_hex(&canonical_json(&kept).unwrap_or_default())
}

/// Refuses a manifest whose content does not match its own checksum, or
/// that has none (exported before manifests covered themselves).
fn verify_own_checksum(manifest: &serde_json::Value, path: &Path) -> Result<()> {
    let Some(recorded) = manifest.get(MANIFEST_CHECKSUM).and_then(|v| v.as_str()) else {
        bail!(
            "{} has no `{MANIFEST_CHECKSUM}`, so a change to it (a class name, a neuron) could not be noticed: it was exported by an older sieve or edited. Export the model again with `sieve export RUN_DIR {} --force`",
            path.display(),
            folder_of(path)
        );
    };
    let actual = content_checksum(manifest);
    if actual != recorded {
        bail!(
            "{} was changed after export: its content no longer matches its `{MANIFEST_CHECKSUM}` (sha256 {actual}, recorded {recorded}). An edited class name, neuron or setting would give wrong labels, so the model is not used; restore the original file or export the model again with `sieve export RUN_DIR {} --force`",
            path.display(),
            folder_of(path)
        );
    }
    Ok(())
}

/// The slim model folder of a manifest path, for messages.
fn folder_of(path: &Path) -> String {
    path.parent()
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ".".into())
}

/// A manifest path joined to `dir`, refusing absolute paths and `..`.
fn listed_path(dir: &Path, relative: &str) -> Result<PathBuf> {
    let path = Path::new(relative);
    let safe = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        bail!(
            "{} lists the file '{relative}', which is outside the model folder; re-export the model with `sieve export`",
            dir.join(MANIFEST_FILE).display()
        );
    }
    Ok(dir.join(path))
}

/// sha256 of a whole file, as hex (the content hash every cache key uses).
pub fn sha256_file(path: &Path) -> Result<String> {
    crate::util::hashing::sha256_of_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> SlimManifest {
        std::fs::write(dir.join(CLASSIFIER_FILE), b"{\"weights\": []}").unwrap();
        std::fs::create_dir_all(dir.join(ENCODER_DIR)).unwrap();
        std::fs::write(dir.join("encoder/config.json"), b"{}").unwrap();
        let mut files = BTreeMap::new();
        for name in [CLASSIFIER_FILE, "encoder/config.json"] {
            files.insert(name.to_string(), sha256_file(&dir.join(name)).unwrap());
        }
        let manifest = SlimManifest {
            format: SLIM_FORMAT,
            sieve_version: "0.0.0".into(),
            backend: "candle".into(),
            backend_params: Default::default(),
            encoder_model: ENCODER_DIR.into(),
            model_name: "m".into(),
            encoder_note: String::new(),
            task: SlimTask::Tagging,
            subword_pooling: "last".into(),
            sentence_pooling: "cls".into(),
            batch_size: 8,
            last_layer: 2,
            model_layers: 7,
            kept_layers: Some(2),
            hidden: 4,
            neurons: vec![[2, 3], [0, 1]],
            classes: vec!["A".into(), "B".into()],
            run_test_score: None,
            files,
            source: None,
        };
        manifest.write(dir).unwrap();
        manifest
    }

    fn error(dir: &Path) -> String {
        format!("{:#}", SlimManifest::load_verified(dir).unwrap_err())
    }

    #[test]
    fn an_intact_folder_loads() {
        let dir = tempfile::tempdir().unwrap();
        let written = sample(dir.path());
        assert_eq!(SlimManifest::load_verified(dir.path()).unwrap(), written);
    }

    #[test]
    fn a_first_export_without_the_newer_fields_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let written = sample(dir.path());
        let mut value = serde_json::to_value(&written).unwrap();
        let object = value.as_object_mut().unwrap();
        for field in ["encoder_model", "kept_layers", "source"] {
            object.remove(field);
        }
        let checksum = content_checksum(&value);
        value[MANIFEST_CHECKSUM] = checksum.into();
        std::fs::write(dir.path().join(MANIFEST_FILE), value.to_string()).unwrap();
        let loaded = SlimManifest::load_verified(dir.path()).unwrap();
        assert_eq!(loaded.encoder_model, ENCODER_DIR);
        assert_eq!((loaded.kept_layers, loaded.source), (None, None));
    }

    #[test]
    fn an_encoder_outside_the_encoder_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = sample(dir.path());
        manifest.encoder_model = "classifier.json".into();
        manifest.write(dir.path()).unwrap();
        assert!(error(dir.path()).contains("not inside encoder/"));
    }

    #[test]
    fn a_flipped_byte_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let path = dir.path().join(CLASSIFIER_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let message = error(dir.path());
        assert!(
            message.contains(CLASSIFIER_FILE) && message.contains("re-export"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        std::fs::remove_file(dir.path().join("encoder/config.json")).unwrap();
        let message = error(dir.path());
        assert!(
            message.contains("config.json") && message.contains("missing"),
            "{message}"
        );
    }

    #[test]
    fn another_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = sample(dir.path());
        manifest.format = SLIM_FORMAT + 1;
        manifest.write(dir.path()).unwrap();
        let message = error(dir.path());
        assert!(
            message.contains("format") && message.contains("re-export"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_manifest_says_what_the_folder_should_be() {
        let dir = tempfile::tempdir().unwrap();
        let message = error(dir.path());
        assert!(message.contains("not a slim model folder"), "{message}");
    }

    #[test]
    fn damaged_json_and_escaping_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), "{not json").unwrap();
        assert!(error(dir.path()).contains("not valid JSON"));
        let mut manifest = sample(dir.path());
        manifest.files.insert("../outside".into(), "00".into());
        manifest.write(dir.path()).unwrap();
        assert!(error(dir.path()).contains("outside the model folder"));
    }

    #[test]
    fn a_neuron_beyond_the_last_layer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = sample(dir.path());
        manifest.neurons.push([3, 0]);
        manifest.write(dir.path()).unwrap();
        assert!(error(dir.path()).contains("[3, 0]"));
    }

    /// Swapping two class names in manifest.json once gave wrong tags
    /// without a word: the checksums covered every file but the manifest.
    #[test]
    fn an_edited_manifest_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let path = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let swapped = text
            .replace("\"A\"", "\"@\"")
            .replace("\"B\"", "\"A\"")
            .replace("\"@\"", "\"B\"");
        assert_ne!(swapped, text);
        std::fs::write(&path, swapped).unwrap();
        let message = error(dir.path());
        assert!(
            message.contains("manifest.json")
                && message.contains("changed after export")
                && message.contains("sieve export"),
            "{message}"
        );
    }

    #[test]
    fn a_manifest_without_its_checksum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let path = dir.path().join(MANIFEST_FILE);
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        value.as_object_mut().unwrap().remove(MANIFEST_CHECKSUM);
        std::fs::write(&path, value.to_string()).unwrap();
        assert!(error(dir.path()).contains("has no `manifest_sha256`"));
    }

    #[test]
    fn the_checksum_ignores_key_order_spacing_and_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = sample(dir.path());
        let path = dir.path().join(MANIFEST_FILE);
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // Compact, and with a run folder moved elsewhere.
        let mut compact = value.clone();
        compact["source"] = serde_json::json!({
            "run_dir": "/elsewhere", "model": "/m", "backend_params": {}
        });
        std::fs::write(&path, compact.to_string()).unwrap();
        let loaded = SlimManifest::load_verified(dir.path()).unwrap();
        manifest.source = loaded.source.clone();
        assert_eq!(loaded, manifest);
    }
}
