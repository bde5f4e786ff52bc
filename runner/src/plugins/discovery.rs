//! Where plugins are looked for.

use std::path::{Path, PathBuf};

/// Environment variable naming the plugin folder.
pub const PLUGIN_DIR_ENV: &str = "SIEVE_PLUGIN_DIR";

/// Which setting chose the plugin folder (shown in messages, so a user
/// knows what to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSource {
    Spec,
    Environment,
    BesideBinary,
}

impl DirSource {
    pub fn describe(self) -> &'static str {
        match self {
            DirSource::Spec => "the spec's `plugins` field",
            DirSource::Environment => "the SIEVE_PLUGIN_DIR environment variable",
            DirSource::BesideBinary => "the folder of the sieve binary",
        }
    }
}

/// The plugin folder: the spec's field wins, then `SIEVE_PLUGIN_DIR`, then
/// the folder holding the running binary (where `cargo build` puts the
/// plugin libraries next to `sieve`).
pub fn plugin_dir(from_spec: Option<&Path>) -> std::io::Result<(PathBuf, DirSource)> {
    if let Some(dir) = from_spec {
        return Ok((dir.to_path_buf(), DirSource::Spec));
    }
    if let Some(dir) = std::env::var_os(PLUGIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(dir), DirSource::Environment));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((dir, DirSource::BesideBinary))
}

/// Dynamic libraries in `dir` (not recursive), sorted by file name so the
/// listing and the choice between duplicates are stable.
pub(super) fn library_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && is_dynamic_library(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_dynamic_library(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("so" | "dylib" | "dll")
    )
}
