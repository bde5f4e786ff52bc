//! `sieve export RUN_DIR OUT_DIR`: a run's selection as a slim model folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::pipeline::saved::SavedResults;
use crate::spec::{parse_spec_text, LoadedSpec, SentencePoolingSpec, SubwordPoolingSpec, TaskSpec};

use super::manifest::{
    sha256_file, SlimManifest, SlimTask, CLASSIFIER_FILE, ENCODER_DIR, MANIFEST_FILE, SLIM_FORMAT,
};

/// How `sieve export` treats its output folder and the run's spec.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Replace an existing non-empty output folder.
    pub force: bool,
    /// The spec the run was made from, when relative paths in the run's
    /// `spec.yaml` cannot be resolved otherwise.
    pub spec: Option<PathBuf>,
}

/// Backends whose model folder `export` knows how to copy.
const SUPPORTED_BACKENDS: &[&str] = &["candle"];

/// Writes the slim model of the run in `run_dir` to `out_dir`, atomically
/// (built beside it, then renamed). Returns the manifest written.
pub fn export_run(run_dir: &Path, out_dir: &Path, options: &ExportOptions) -> Result<SlimManifest> {
    if out_dir.exists() && !options.force && !is_empty_dir(out_dir)? {
        bail!(
            "{} exists and is not empty; choose another folder or pass --force to replace it",
            out_dir.display()
        );
    }
    let loaded = run_spec(run_dir, options.spec.as_deref())?;
    let spec = &loaded.spec;
    let backend = spec.model.backend.value.clone();
    if !SUPPORTED_BACKENDS.contains(&backend.as_str()) {
        bail!(
            "export supports the {} backend(s) so far; this run used '{backend}'",
            SUPPORTED_BACKENDS.join(", ")
        );
    }
    let task = match spec.data.task {
        TaskSpec::Tagging => SlimTask::Tagging,
        TaskSpec::Classification => SlimTask::Classification,
        TaskSpec::Regression => {
            bail!("export supports tagging and classification runs, not regression")
        }
    };
    let results = SavedResults::read(run_dir)?;
    let selection = results.outcome.selection.as_ref().with_context(|| {
        format!(
            "the run in {} has no final selection (its spec has no selection stages); nothing to export",
            run_dir.display()
        )
    })?;
    let probe = results.outcome.probe.as_ref().with_context(|| {
        format!(
            "{} has no probe on the selected neurons (made by an older sieve); run `sieve run --recompute` on its spec",
            run_dir.join("results.json").display()
        )
    })?;
    let neurons = selection.neurons.clone();
    if probe.features != neurons.len() || probe.outputs != results.classes.len() {
        bail!(
            "{}: the saved probe ({} inputs, {} outputs) does not match the selection ({} neurons, {} classes); run `sieve run --recompute`",
            run_dir.join("results.json").display(),
            probe.features,
            probe.outputs,
            neurons.len(),
            results.classes.len()
        );
    }
    let last_layer = neurons.iter().map(|n| n[0]).max().unwrap_or(0);
    let report = read_report(run_dir);
    let model_dir = loaded.resolve(&spec.model.path.value);
    if !model_dir.join("config.json").is_file() {
        bail!(
            "the run's model folder {} is missing (or has no config.json); pass --spec with the spec the run was made from",
            model_dir.display()
        );
    }
    let mut backend_params = spec.model.params.clone().unwrap_or_default();
    backend_params.remove("model");

    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out_dir
        .file_name()
        .with_context(|| format!("{} is not a folder name", out_dir.display()))?
        .to_string_lossy()
        .into_owned();
    let staging = tempfile::Builder::new()
        .prefix(&format!("{name}.tmp-"))
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a staging folder in {}", parent.display()))?;
    let tmp = staging.path();

    let mut files = BTreeMap::new();
    let classifier = serde_json::to_vec(probe)?;
    std::fs::write(tmp.join(CLASSIFIER_FILE), &classifier)?;
    files.insert(
        CLASSIFIER_FILE.to_string(),
        sha256_file(&tmp.join(CLASSIFIER_FILE))?,
    );
    std::fs::create_dir(tmp.join(ENCODER_DIR))?;
    for source in model_files(&model_dir)? {
        let file_name = source
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let target = tmp.join(ENCODER_DIR).join(&file_name);
        std::fs::copy(&source, &target)
            .with_context(|| format!("cannot copy {} to {}", source.display(), target.display()))?;
        files.insert(format!("{ENCODER_DIR}/{file_name}"), sha256_file(&target)?);
    }
    let manifest = SlimManifest {
        format: SLIM_FORMAT,
        sieve_version: env!("CARGO_PKG_VERSION").to_string(),
        backend,
        backend_params,
        model_name: report["model"]["name"].as_str().unwrap_or("").to_string(),
        encoder_note: format!(
            "full encoder weights are kept; the forward pass stops after hidden state {last_layer} at prediction time"
        ),
        task,
        subword_pooling: subword_name(spec.data.subword_pooling).into(),
        sentence_pooling: sentence_name(spec.data.sentence_pooling).into(),
        batch_size: spec.model.batch_size,
        last_layer,
        model_layers: report["model"]["layers"].as_u64().unwrap_or(0) as u32,
        hidden: results.hidden,
        neurons,
        classes: results.classes.clone(),
        run_test_score: Some(selection.test),
        files,
    };
    std::fs::write(
        tmp.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    if out_dir.exists() {
        if out_dir.is_dir() {
            std::fs::remove_dir_all(out_dir)
        } else {
            std::fs::remove_file(out_dir)
        }
        .with_context(|| format!("cannot replace {}", out_dir.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, out_dir).with_context(|| {
        let _ = std::fs::remove_dir_all(&staged);
        format!("cannot move the slim model into {}", out_dir.display())
    })?;
    Ok(manifest)
}

/// The run's spec: `RUN_DIR/spec.yaml` with relative paths resolved
/// against the folder of the spec the run was started from (`--spec`, else
/// the path report.json records, else the run folder).
fn run_spec(run_dir: &Path, spec: Option<&Path>) -> Result<LoadedSpec> {
    let copy = run_dir.join("spec.yaml");
    let (path, text) = match spec {
        Some(path) => (
            path.to_path_buf(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => (
            copy.clone(),
            std::fs::read_to_string(&copy).with_context(|| {
                format!(
                    "cannot read {}; is {} the output folder of a `sieve run`?",
                    copy.display(),
                    run_dir.display()
                )
            })?,
        ),
    };
    let parsed = parse_spec_text(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base_dir = match spec {
        Some(path) => path.parent().map(Path::to_path_buf),
        None => read_report(run_dir)["spec"]
            .as_str()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .and_then(|p| p.parent().map(Path::to_path_buf)),
    }
    .filter(|p| !p.as_os_str().is_empty())
    .unwrap_or_else(|| PathBuf::from("."));
    Ok(LoadedSpec {
        path,
        base_dir,
        spec: parsed,
        text,
    })
}

fn read_report(run_dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(run_dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The model folder's top-level files the backend reads (all but docs).
fn model_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let doc = name.ends_with(".md") || name.starts_with('.');
        if path.is_file() && !doc {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .next()
        .is_none())
}

pub(crate) fn subword_name(p: SubwordPoolingSpec) -> &'static str {
    match p {
        SubwordPoolingSpec::First => "first",
        SubwordPoolingSpec::Last => "last",
        SubwordPoolingSpec::Average => "average",
    }
}

pub(crate) fn sentence_name(p: SentencePoolingSpec) -> &'static str {
    match p {
        SentencePoolingSpec::Cls => "cls",
        SentencePoolingSpec::Mean => "mean",
    }
}
