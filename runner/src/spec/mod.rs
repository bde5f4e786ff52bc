//! YAML experiment specs: what `sieve run` and `sieve validate` read.
//!
//! Every struct denies unknown fields, so a misspelled key is an error with
//! its line and column instead of a silently ignored setting. Relative paths
//! are resolved against the spec file's folder, so a spec runs the same from
//! any working directory.

mod checks;
mod types;

pub use checks::check_files;
pub use types::*;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// A spec that could not be read, parsed or checked.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("{path}: cannot read the spec: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A parsed spec and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub path: PathBuf,
    /// The folder relative paths in the spec are resolved against.
    pub base_dir: PathBuf,
    pub spec: ExperimentSpec,
    /// The spec's text, kept for the run folder (what ran is recorded).
    pub text: String,
}

impl LoadedSpec {
    /// Resolves a path written in the spec.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The output folder of the run.
    pub fn output_dir(&self) -> PathBuf {
        self.resolve(&self.spec.output.value)
    }
}

/// Reads and parses a spec; YAML and type errors carry line and column.
pub fn load_spec(path: &Path) -> Result<LoadedSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let spec = parse_spec_text(&text).map_err(|message| SpecError::Invalid {
        path: path.to_path_buf(),
        message,
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(LoadedSpec {
        path: path.to_path_buf(),
        base_dir,
        spec,
        text,
    })
}

/// Parses spec text; the error is serde-saphyr's message, which names the
/// line and column and shows the offending snippet.
pub fn parse_spec_text(text: &str) -> Result<ExperimentSpec, String> {
    let spec: ExperimentSpec = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    spec.check_values()?;
    Ok(spec)
}

#[cfg(test)]
mod tests;
