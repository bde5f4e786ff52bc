//! `outputs.json`: the seal on a run folder's outputs.
//!
//! A run's outputs (spec.yaml, results.json, report.json, report.md and
//! the charts) form one set: they are written together at the end of the
//! run, and then this record is written last, listing the sha256 of each
//! output and of each input (model, backend files, data) they came from.
//! The old record is removed before a new set is written, so a run that
//! dies half-way leaves a folder without a record instead of a mix that
//! looks complete; a run killed earlier leaves the previous set intact.
//! `sieve export` refuses a folder whose record is missing or does not
//! match its files and inputs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::util::atomic::write_atomic;
use crate::util::hashing::sha256_of_file;

use super::fingerprints::{FileFingerprint, InputFingerprints};

pub const RECORD_FILE: &str = "outputs.json";

/// Bumped when the record's meaning changes.
const RECORD_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub format: u32,
    pub sieve_version: String,
    /// The activation store entry the results were computed from.
    pub store_key: String,
    /// The fingerprint of the settings and plugins (results.json's).
    pub results_fingerprint: String,
    pub inputs: InputFingerprints,
    /// Output file name (relative to the run folder) -> sha256.
    pub outputs: BTreeMap<String, String>,
}

impl RunRecord {
    /// Removes the record before a new set of outputs is written.
    pub fn retract(dir: &Path) -> Result<()> {
        let path = dir.join(RECORD_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    /// Hashes the finished `outputs` and writes the record (atomically,
    /// last).
    pub fn seal(
        dir: &Path,
        store_key: &str,
        results_fingerprint: &str,
        inputs: &InputFingerprints,
        outputs: &[String],
    ) -> Result<RunRecord> {
        let mut hashes = BTreeMap::new();
        for name in outputs {
            // Just written: hashed directly, never worth a cache entry.
            hashes.insert(name.clone(), sha256_of_file(&dir.join(name))?);
        }
        let record = RunRecord {
            format: RECORD_FORMAT,
            sieve_version: env!("CARGO_PKG_VERSION").to_string(),
            store_key: store_key.to_string(),
            results_fingerprint: results_fingerprint.to_string(),
            inputs: inputs.clone(),
            outputs: hashes,
        };
        let json = serde_json::to_string_pretty(&record)?;
        write_atomic(&dir.join(RECORD_FILE), json.as_bytes())?;
        Ok(record)
    }

    /// Reads the record of the run in `dir` and checks that every output
    /// it lists is unchanged. Inputs are checked by the caller, which knows
    /// which ones it depends on ([`Self::check_model`], [`Self::check_data`]).
    pub fn verify(dir: &Path) -> Result<RunRecord> {
        let path = dir.join(RECORD_FILE);
        if !path.exists() {
            bail!(
                "{} has no {RECORD_FILE}: the run did not finish (or was made by an older sieve), so its files may come from different runs. Run `sieve run` on its spec again",
                dir.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let record: RunRecord = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; run `sieve run` on the run's spec again",
                path.display()
            )
        })?;
        if record.format != RECORD_FORMAT {
            bail!(
                "{}: record format {} is not this sieve's {RECORD_FORMAT}; run `sieve run` on the run's spec again",
                path.display(),
                record.format
            );
        }
        for (name, sha256) in &record.outputs {
            let file = dir.join(name);
            let now = sha256_of_file(&file).with_context(|| {
                format!("{} lists {name}, which cannot be read", path.display())
            })?;
            if &now != sha256 {
                bail!(
                    "{} was changed after the run that wrote it (it no longer matches {}); run `sieve run` on the run's spec again",
                    file.display(),
                    path.display()
                );
            }
        }
        Ok(record)
    }

    /// Fails unless `model` (the model an export will truncate) and the
    /// files the backend parameters named are the ones the run used.
    pub fn check_model(&self, model: &Path) -> Result<()> {
        FileFingerprint {
            path: model.to_path_buf(),
            sha256: self.inputs.model.sha256.clone(),
        }
        .check_unchanged("model")?;
        for (name, file) in &self.inputs.model_param_files {
            file.check_unchanged(&format!("file of backend parameter `{name}`,"))?;
        }
        Ok(())
    }

    /// Fails when a data file the run read has changed since; a data file
    /// that is gone is only a warning (the results stand on their own).
    pub fn check_data(&self) -> Result<()> {
        for file in &self.inputs.data {
            if file.path.exists() {
                file.check_unchanged("data file")?;
            } else {
                tracing::warn!(
                    "the data file {} the run read is gone; its results cannot be checked against it",
                    file.path.display()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(dir: &Path) -> InputFingerprints {
        let model = dir.join("model.bin");
        std::fs::write(&model, b"weights").unwrap();
        InputFingerprints {
            model: FileFingerprint {
                path: model.clone(),
                sha256: sha256_of_file(&model).unwrap(),
            },
            model_param_files: BTreeMap::new(),
            data: Vec::new(),
        }
    }

    #[test]
    fn a_sealed_run_verifies_and_an_edited_output_does_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), b"{}").unwrap();
        let inputs = inputs(dir.path());
        RunRecord::seal(dir.path(), "k", "f", &inputs, &["report.json".into()]).unwrap();
        let record = RunRecord::verify(dir.path()).unwrap();
        record.check_model(&inputs.model.path).unwrap();
        std::fs::write(dir.path().join("report.json"), b"{\"x\":1}").unwrap();
        let error = RunRecord::verify(dir.path()).unwrap_err().to_string();
        assert!(error.contains("report.json was changed"), "{error}");
    }

    #[test]
    fn a_changed_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let record = RunRecord::seal(dir.path(), "k", "f", &inputs, &[]).unwrap();
        std::fs::write(&inputs.model.path, b"other weights").unwrap();
        let error = record
            .check_model(&inputs.model.path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("changed since the run"), "{error}");
    }

    #[test]
    fn a_retracted_record_means_an_unfinished_run() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        RunRecord::seal(dir.path(), "k", "f", &inputs, &[]).unwrap();
        RunRecord::retract(dir.path()).unwrap();
        let error = RunRecord::verify(dir.path()).unwrap_err().to_string();
        assert!(error.contains("did not finish"), "{error}");
    }
}
