//! `sieve validate SPEC`: every check short of running.

use std::path::Path;

use anyhow::Result;
use sieve_core::PluginKind;

use crate::pipeline::corpora::read_splits;
use crate::pipeline::{check_plugins, open_registry};
use crate::spec::{check_files, load_spec};

pub fn validate(spec_path: &Path) -> Result<()> {
    super::logging::init_stderr();
    let loaded = load_spec(spec_path)?;
    check_files(&loaded)?;
    let registry = open_registry(&loaded)?;
    check_plugins(&loaded, &registry)?;
    let backend = registry.find(&loaded.spec.model.backend.value, PluginKind::Backend)?;
    let splits = read_splits(&loaded)?;
    let word_level = loaded.spec.data.is_word_level();
    println!(
        "{}: valid. backend '{}' {} ({}); rows train {}, dev {}, test {}; output {}",
        spec_path.display(),
        backend.name,
        backend.version,
        backend.file.display(),
        splits.rows(0, word_level),
        splits.rows(1, word_level),
        splits.rows(2, word_level),
        loaded.output_dir().display()
    );
    Ok(())
}
