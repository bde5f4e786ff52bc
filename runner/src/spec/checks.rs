//! Checks that need the file system: every path the spec names must exist.

use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::{LoadedSpec, SpecError};

/// Fails on the first path in the spec that does not exist, naming the spec
/// line and column where it is written.
pub fn check_files(loaded: &LoadedSpec) -> Result<(), SpecError> {
    let spec = &loaded.spec;
    let data = &spec.data;
    let mut paths: Vec<(&str, &Spanned<PathBuf>)> = vec![("model.path", &spec.model.path)];
    for (field, path) in [
        ("data.train", &data.train),
        ("data.dev", &data.dev),
        ("data.test", &data.test),
        ("data.file", &data.file),
        ("plugins", &spec.plugins),
    ] {
        if let Some(path) = path {
            paths.push((field, path));
        }
    }
    for (field, path) in paths {
        let resolved = loaded.resolve(&path.value);
        if !resolved.exists() {
            return Err(SpecError::Invalid {
                path: loaded.path.clone(),
                message: format!(
                    "line {}, column {}: field `{field}`: {} does not exist{}",
                    path.referenced.line(),
                    path.referenced.column(),
                    resolved.display(),
                    hint_for(field),
                ),
            });
        }
    }
    Ok(())
}

/// What to do about a missing path, for the paths users most often miss.
fn hint_for(field: &str) -> &'static str {
    match field {
        "model.path" | "data.train" | "data.dev" | "data.test" | "data.file" => {
            " (relative paths are read from the spec's folder; run `scripts/fetch-assets.sh` for the project's assets)"
        }
        "plugins" => " (build the plugins with `cargo build --release` or fix the folder)",
        _ => "",
    }
}
