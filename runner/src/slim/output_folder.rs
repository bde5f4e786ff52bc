//! Where `sieve export` may write, and what `--force` may replace.
//!
//! Sieve never deletes what it did not write. `--force` replaces a folder
//! only when it is an earlier Sieve export (its manifest says so and every
//! file in it is one the manifest lists), and never the run folder being
//! exported, a folder above it, or an activation store.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::manifest::{MANIFEST_FILE, SLIM_FORMAT};

/// Fails unless `export_run` may write the slim model to `out_dir`.
pub fn check_output_folder(run_dir: &Path, out_dir: &Path, force: bool) -> Result<()> {
    if !out_dir.exists() {
        return refuse_run_or_ancestor(run_dir, out_dir);
    }
    if !out_dir.is_dir() {
        bail!(
            "{} is a file, not a folder; choose another output folder (sieve never replaces a file it did not write)",
            out_dir.display()
        );
    }
    refuse_run_or_ancestor(run_dir, out_dir)?;
    if is_empty_dir(out_dir)? {
        return Ok(());
    }
    if !force {
        bail!(
            "{} exists and is not empty; choose another folder, or pass --force to replace it if it holds an earlier `sieve export`",
            out_dir.display()
        );
    }
    if looks_like_store(out_dir)? {
        bail!(
            "{} holds an activation store; --force replaces only an earlier `sieve export` folder, never a store. Choose another output folder",
            out_dir.display()
        );
    }
    check_earlier_export(out_dir)
}

/// The run folder, or a folder that contains it, is never an output.
fn refuse_run_or_ancestor(run_dir: &Path, out_dir: &Path) -> Result<()> {
    let run = std::fs::canonicalize(run_dir)
        .with_context(|| format!("cannot read the run folder {}", run_dir.display()))?;
    let out = absolute_lexical(out_dir)?;
    let out = std::fs::canonicalize(&out).unwrap_or(out);
    if out == run {
        bail!(
            "{} is the run folder being exported; choose another output folder (e.g. {}-slim)",
            out_dir.display(),
            out_dir.display()
        );
    }
    if run.starts_with(&out) {
        bail!(
            "{} contains the run folder {}; exporting there would put the run at risk. Choose a folder of its own (e.g. {}-slim)",
            out_dir.display(),
            run_dir.display(),
            run_dir.display()
        );
    }
    Ok(())
}

/// A path made absolute without touching the file system (it may not exist).
fn absolute_lexical(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current folder")?
        .join(path))
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .next()
        .is_none())
}

/// True for a store folder, a store entry, or a run folder with its store.
fn looks_like_store(dir: &Path) -> Result<bool> {
    let is_entry = |d: &Path| {
        std::fs::read_to_string(d.join(MANIFEST_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("identity").is_some() && v.get("key").is_some())
    };
    if is_entry(dir) || dir.join("activations").is_dir() {
        return Ok(true);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".partial")
            || name.ends_with(".lock")
            || (path.is_dir() && is_entry(&path))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Fails unless `dir` holds an earlier export and nothing else.
fn check_earlier_export(dir: &Path) -> Result<()> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest: serde_json::Value = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| {
            format!(
                "{} is not an earlier `sieve export` (no slim-model {MANIFEST_FILE} in it); --force replaces only such folders. Choose another output folder, or empty this one yourself",
                dir.display()
            )
        })?;
    let listed = manifest
        .get("files")
        .and_then(|f| f.as_object())
        .filter(|_| manifest.get("format").and_then(|f| f.as_u64()) == Some(SLIM_FORMAT as u64));
    let Some(listed) = listed else {
        bail!(
            "{} is not a slim-model manifest of this sieve (format {SLIM_FORMAT}); --force replaces only earlier `sieve export` folders. Choose another output folder",
            manifest_path.display()
        );
    };
    for file in files_under(dir)? {
        let relative = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        if relative != MANIFEST_FILE && !listed.contains_key(&relative) {
            bail!(
                "{} holds {relative}, which the earlier export did not write; --force will not delete it. Move it away or choose another output folder",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Every file below `dir` (symbolic links count as files, not followed).
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// Moves the finished `staged` folder to `out_dir`. An earlier export there
/// (already checked by [`check_output_folder`]) is moved aside first and
/// removed only once the new one is in place, so a failure leaves one of
/// the two whole.
pub fn replace_with_staged(staged: &Path, out_dir: &Path) -> Result<()> {
    let parent = staged.parent().unwrap_or_else(|| Path::new("."));
    let aside = if out_dir.exists() {
        let aside = crate::util::atomic::staging_dir(parent, ".sieve-replaced-")?.keep();
        let target = aside.join("old");
        std::fs::rename(out_dir, &target).with_context(|| {
            format!("cannot move the earlier export {} aside", out_dir.display())
        })?;
        Some((aside, target))
    } else {
        None
    };
    if let Err(error) = std::fs::rename(staged, out_dir) {
        if let Some((_, target)) = &aside {
            let _ = std::fs::rename(target, out_dir);
        }
        let _ = std::fs::remove_dir_all(staged);
        return Err(error)
            .with_context(|| format!("cannot move the slim model into {}", out_dir.display()));
    }
    if let Some((aside, _)) = aside {
        std::fs::remove_dir_all(&aside)
            .with_context(|| format!("cannot remove the replaced export {}", aside.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_export(dir: &Path) {
        std::fs::create_dir_all(dir.join("encoder")).unwrap();
        std::fs::write(dir.join("classifier.json"), b"{}").unwrap();
        std::fs::write(dir.join("encoder/config.json"), b"{}").unwrap();
        let manifest = serde_json::json!({
            "format": SLIM_FORMAT,
            "files": {"classifier.json": "x", "encoder/config.json": "y"},
        });
        std::fs::write(dir.join(MANIFEST_FILE), manifest.to_string()).unwrap();
    }

    #[test]
    fn force_replaces_an_earlier_export() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let out = root.path().join("slim");
        fake_export(&out);
        check_output_folder(&run, &out, true).unwrap();
        assert!(check_output_folder(&run, &out, false).is_err());
    }

    #[test]
    fn force_refuses_a_folder_with_an_unrelated_file() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let out = root.path().join("slim");
        fake_export(&out);
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        let error = check_output_folder(&run, &out, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("notes.txt"), "{error}");
    }

    #[test]
    fn force_refuses_the_run_folder_and_its_ancestors() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("runs/x");
        std::fs::create_dir_all(&run).unwrap();
        let error = check_output_folder(&run, &run, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is the run folder"), "{error}");
        let error = check_output_folder(&run, &root.path().join("runs"), true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("contains the run folder"), "{error}");
    }

    #[test]
    fn force_refuses_a_store() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let store = root.path().join("store");
        std::fs::create_dir_all(store.join("abcd.partial")).unwrap();
        let error = check_output_folder(&run, &store, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("activation store"), "{error}");
    }

    #[test]
    fn replacing_keeps_nothing_of_the_old_export_and_no_temporaries() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("slim");
        fake_export(&out);
        let staged = root.path().join("staged");
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join("new.json"), b"1").unwrap();
        replace_with_staged(&staged, &out).unwrap();
        assert!(out.join("new.json").exists());
        assert!(!out.join("classifier.json").exists());
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "leftovers beside the export");
    }
}
