//! Where plugins are looked for.

use std::path::{Path, PathBuf};

use sieve_core::PluginKind;

use super::loading::{PluginRegistry, RejectedLibrary};

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

impl PluginRegistry {
    /// Two libraries that are the same plugin (name and kind), e.g. an old
    /// copy beside a rebuilt one: Sieve cannot know which one the user
    /// means, so it uses neither. Each moves to `rejected` with a reason
    /// that names every file, which `sieve plugins` lists and a spec asking
    /// for the plugin gets as its error.
    pub(super) fn refuse_duplicates(&mut self) {
        let plugins = std::mem::take(&mut self.plugins);
        let (unique, duplicates) = split_duplicates(plugins, |p| (p.name.clone(), p.kind));
        self.plugins = unique;
        for group in duplicates {
            let files: Vec<String> = group.iter().map(|p| p.file.display().to_string()).collect();
            let reason = duplicate_reason(&group[0].name, group[0].kind, &files, &self.dir);
            self.rejected
                .extend(group.into_iter().map(|plugin| RejectedLibrary {
                    file: plugin.file,
                    name: Some(plugin.name),
                    reason: reason.clone(),
                }));
        }
    }
}

fn duplicate_reason(name: &str, kind: PluginKind, files: &[String], dir: &Path) -> String {
    format!(
        "{} library files are all the {} plugin '{name}' ({}), so Sieve cannot tell which one \
         is meant and uses none of them; remove all but one from the plugin folder {}",
        files.len(),
        kind.as_str(),
        files.join(", "),
        dir.display()
    )
}

/// `items` split into those whose key no other item has (in order) and
/// the groups of items sharing a key (each in order).
fn split_duplicates<T, K: PartialEq>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Vec<Vec<T>>) {
    let keys: Vec<K> = items.iter().map(&key).collect();
    let mut unique = Vec::new();
    let mut groups: Vec<(usize, Vec<T>)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let first = keys.iter().position(|k| *k == keys[i]).unwrap_or(i);
        let shared = keys.iter().filter(|k| **k == keys[i]).count() > 1;
        if !shared {
            unique.push(item);
        } else if let Some((_, group)) = groups.iter_mut().find(|(f, _)| *f == first) {
            group.push(item);
        } else {
            groups.push((first, vec![item]));
        }
    }
    (unique, groups.into_iter().map(|(_, group)| group).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_libraries_with_one_plugin_name_are_both_set_aside() {
        let items = vec![
            ("a.so", "random", PluginKind::Selector),
            ("b.so", "candle", PluginKind::Backend),
            ("c.so", "random", PluginKind::Selector),
            ("d.so", "random", PluginKind::Backend),
        ];
        let (unique, groups) = split_duplicates(items, |(_, name, kind)| (*name, *kind));
        fn files(items: &[(&'static str, &str, PluginKind)]) -> Vec<&'static str> {
            items.iter().map(|item| item.0).collect()
        }
        assert_eq!(
            files(&unique),
            ["b.so", "d.so"],
            "a backend and a selector may share a name"
        );
        assert_eq!(groups.len(), 1);
        assert_eq!(files(&groups[0]), ["a.so", "c.so"]);
        let reason = duplicate_reason(
            "random",
            PluginKind::Selector,
            &["a.so".into(), "c.so".into()],
            Path::new("/plugins"),
        );
        assert!(
            reason.contains("a.so, c.so") && reason.contains("remove all but one"),
            "{reason}"
        );
    }
}
