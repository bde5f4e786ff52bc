//! What an extraction is: the identity that keys the cache, and its files.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::util::hashing::sha256_hex;

use super::chunk_file::{ChunkEntry, StorageDtype};

/// Bumped when the store's layout changes; old extractions are then ignored
/// (their key differs).
pub const MANIFEST_FORMAT: u32 = 3;

/// The manifest of one extraction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// sha256 of `identity`, shortened: the folder name.
    pub key: String,
    pub identity: ExtractionIdentity,
    /// Label names; stored label `i` is `labels[i]` (empty for regression).
    pub labels: Vec<String>,
    pub splits: Vec<SplitEntry>,
    /// Subword tokens encoded and seconds spent, for throughput reports.
    pub subword_tokens: u64,
    pub extraction_seconds: f64,
    pub windowed_units: u64,
}

/// Everything the activations depend on. Two runs with equal identities may
/// share an extraction. Every file is fingerprinted by the sha256 of its
/// whole content (see `util::hashing`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtractionIdentity {
    pub backend: String,
    pub backend_version: String,
    pub model_name: String,
    /// The model file, or every file of the model folder.
    pub model_fingerprint: String,
    /// Files the backend's parameters name (an ONNX Runtime library, a
    /// tokenizer kept elsewhere), by parameter name.
    pub model_param_files: std::collections::BTreeMap<String, String>,
    pub num_layers: u32,
    pub hidden_size: u32,
    /// Hidden states stored per row: 0..=last_layer.
    pub stored_layers: u32,
    pub data_fingerprints: Vec<String>,
    /// The reader, task, pooling, split and backend parameter settings,
    /// as canonical JSON (sorted keys).
    pub data_settings: String,
    /// On-disk precision (f16 values differ from f32 ones).
    pub dtype: StorageDtype,
}

impl ExtractionIdentity {
    pub fn key(&self) -> Result<String> {
        let text = crate::util::hashing::canonical_json(self)?;
        Ok(sha256_hex(&format!("{MANIFEST_FORMAT}:{text}"))[..16].to_string())
    }
}

/// One split: its chunk files in unit order, and their totals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitEntry {
    pub name: String,
    pub rows: usize,
    pub units: usize,
    pub subword_tokens: u64,
    /// Seconds of extraction summed over chunks (shards' times add up).
    pub seconds: f64,
    pub windowed_units: u64,
    pub chunks: Vec<ChunkEntry>,
}

impl SplitEntry {
    pub fn from_chunks(name: &str, chunks: Vec<ChunkEntry>) -> SplitEntry {
        SplitEntry {
            name: name.to_string(),
            rows: chunks.iter().map(|c| c.rows).sum(),
            units: chunks.iter().map(|c| c.units).sum(),
            subword_tokens: chunks.iter().map(|c| c.subword_tokens).sum(),
            seconds: chunks.iter().map(|c| c.seconds).sum(),
            windowed_units: chunks.iter().map(|c| c.windowed_units).sum(),
            chunks,
        }
    }
}

impl Manifest {
    pub fn new(identity: ExtractionIdentity, labels: Vec<String>) -> Result<Self> {
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            key: identity.key()?,
            identity,
            labels,
            splits: Vec::new(),
            subword_tokens: 0,
            extraction_seconds: 0.0,
            windowed_units: 0,
        })
    }

    /// Records the finished splits and their totals.
    pub fn set_splits(&mut self, splits: Vec<SplitEntry>) {
        self.subword_tokens = splits.iter().map(|s| s.subword_tokens).sum();
        self.extraction_seconds = splits.iter().map(|s| s.seconds).sum();
        self.windowed_units = splits.iter().map(|s| s.windowed_units).sum();
        self.splits = splits;
    }

    /// Columns of every activation matrix.
    pub fn columns(&self) -> usize {
        self.identity.stored_layers as usize * self.identity.hidden_size as usize
    }

    pub fn split(&self, name: &str) -> Result<&SplitEntry> {
        self.splits
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("the manifest lists no '{name}' split"))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid manifest; delete its folder to re-extract",
                path.display()
            )
        })?;
        if manifest.format != MANIFEST_FORMAT {
            anyhow::bail!(
                "{}: store format {} is not this sieve's format {MANIFEST_FORMAT}; delete the folder to re-extract",
                path.display(),
                manifest.format
            );
        }
        Ok(manifest)
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}
