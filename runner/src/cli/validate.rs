//! `sieve validate SPEC`: every check short of running.
//!
//! The same preflight `sieve run` does before any extraction (plugin names
//! and kinds, each plugin's own check of its parameters, the backend's
//! check of its model), plus a full read of the data: a spec that passes
//! here does not fail later on its settings, its model or its data files.

use std::path::Path;

use anyhow::{bail, Result};
use sieve_core::PluginKind;

use crate::pipeline::preflight::{check_data, check_plugin_params};
use crate::pipeline::{check_plugins, open_registry};
use crate::spec::{check_files, load_spec};

pub fn validate(spec_path: &Path) -> Result<()> {
    super::logging::init_stderr();
    let loaded = load_spec(spec_path)?;
    check_files(&loaded)?;
    let registry = open_registry(&loaded)?;
    check_plugins(&loaded, &registry)?;
    // The plugins' checks and the data's are independent: report both, so
    // that one `validate` shows everything to fix.
    let (splits, _targets) = match (check_plugin_params(&loaded, &registry), check_data(&loaded)) {
        (Ok(()), Ok(data)) => data,
        (params, data) => {
            let problems: Vec<String> = [params.err(), data.err()]
                .into_iter()
                .flatten()
                .map(|e| format!("{e:#}"))
                .collect();
            bail!("{}", problems.join("\nerror: "));
        }
    };
    let backend = registry.find(&loaded.spec.model.backend.value, PluginKind::Backend)?;
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
