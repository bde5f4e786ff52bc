//! What a run's cached work is keyed by: the full content of every input
//! file and a canonical serialisation of every setting that changes a
//! result. Nothing here uses `Debug` text or samples a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sieve_core::ModelDescription;

use crate::spec::LoadedSpec;
use crate::store::ExtractionIdentity;
use crate::util::hash_cache::HashCache;
use crate::util::hashing::{canonical_json, fingerprint_path, fingerprint_path_with};

use super::corpora::Splits;

/// One input file (or model folder) and the sha256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFingerprint {
    pub path: PathBuf,
    pub sha256: String,
}

impl FileFingerprint {
    fn of_path(path: &Path, cache: &HashCache) -> Result<Self> {
        Ok(FileFingerprint {
            path: path.to_path_buf(),
            sha256: fingerprint_path_with(path, cache)?,
        })
    }

    /// Fails, saying what to do, when the file's content is no longer the
    /// one fingerprinted.
    pub fn check_unchanged(&self, what: &str) -> Result<()> {
        let now = fingerprint_path(&self.path).map_err(|error| {
            anyhow::anyhow!(
                "the {what} {} the run was made from cannot be read ({error:#}); rerun `sieve run` on the spec",
                self.path.display()
            )
        })?;
        if now != self.sha256 {
            anyhow::bail!(
                "the {what} {} changed since the run (sha256 {} then, {} now): its results no longer match it; rerun `sieve run` on the spec",
                self.path.display(),
                short(&self.sha256),
                short(&now)
            );
        }
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Every input of a run: the model, files its parameters name, the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFingerprints {
    pub model: FileFingerprint,
    /// Files named by the backend's parameters (e.g. an ONNX Runtime
    /// library), by parameter name.
    pub model_param_files: BTreeMap<String, FileFingerprint>,
    pub data: Vec<FileFingerprint>,
}

impl InputFingerprints {
    /// Hashes every input the spec names (in full; unchanged files come
    /// from the hash cache).
    pub fn of(loaded: &LoadedSpec, splits: &Splits) -> Result<Self> {
        let cache = HashCache::open_default();
        let model =
            FileFingerprint::of_path(&loaded.resolve(&loaded.spec.model.path.value), &cache)?;
        let mut model_param_files = BTreeMap::new();
        for (name, value) in loaded.spec.model.params.iter().flatten() {
            let Some(text) = value.as_str() else { continue };
            let path = loaded.resolve(Path::new(text));
            if path.is_file() {
                model_param_files.insert(name.clone(), FileFingerprint::of_path(&path, &cache)?);
            }
        }
        let data = splits
            .files
            .iter()
            .map(|file| FileFingerprint::of_path(file, &cache))
            .collect::<Result<_>>()?;
        Ok(InputFingerprints {
            model,
            model_param_files,
            data,
        })
    }

    /// Fails on the first input whose content changed since.
    pub fn check_unchanged(&self) -> Result<()> {
        self.model.check_unchanged("model")?;
        for (name, file) in &self.model_param_files {
            file.check_unchanged(&format!("file of backend parameter `{name}`,"))?;
        }
        for file in &self.data {
            file.check_unchanged("data file")?;
        }
        Ok(())
    }
}

/// The settings that shape the activations, as canonical JSON.
#[derive(Serialize)]
struct ExtractionSettings<'a> {
    task: &'a crate::spec::TaskSpec,
    reader: &'a crate::data::DataFormat,
    split: &'a Option<crate::spec::UnitSplit>,
    subword_pooling: &'a crate::spec::SubwordPoolingSpec,
    sentence_pooling: &'a crate::spec::SentencePoolingSpec,
    backend_params: &'a Option<serde_json::Map<String, serde_json::Value>>,
}

/// The identity (cache key) of an extraction of every hidden state.
pub fn extraction_identity(
    loaded: &LoadedSpec,
    backend: (&str, &str),
    description: &ModelDescription,
    inputs: &InputFingerprints,
) -> Result<ExtractionIdentity> {
    let data = &loaded.spec.data;
    let settings = ExtractionSettings {
        task: &data.task,
        reader: &data.reader,
        split: &data.split,
        subword_pooling: &data.subword_pooling,
        sentence_pooling: &data.sentence_pooling,
        backend_params: &loaded.spec.model.params,
    };
    Ok(ExtractionIdentity {
        backend: backend.0.to_string(),
        backend_version: backend.1.to_string(),
        model_name: description.name.to_string(),
        model_fingerprint: inputs.model.sha256.clone(),
        model_param_files: inputs
            .model_param_files
            .iter()
            .map(|(name, file)| (name.clone(), file.sha256.clone()))
            .collect(),
        num_layers: description.num_layers,
        hidden_size: description.hidden_size,
        stored_layers: description.num_layers + 1,
        data_fingerprints: inputs.data.iter().map(|f| f.sha256.clone()).collect(),
        data_settings: canonical_json(&settings)?,
        dtype: loaded.spec.store.dtype,
    })
}
