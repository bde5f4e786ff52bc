//! `sieve export RUN_DIR OUT_DIR`: a run's selection as a slim model folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::pipeline::record::RunRecord;
use crate::pipeline::saved::SavedResults;
use crate::spec::{parse_spec_text, LoadedSpec, SentencePoolingSpec, SubwordPoolingSpec, TaskSpec};

use super::candle_encoder::write_truncated_encoder;
use super::manifest::{
    sha256_file, SlimManifest, SlimSource, SlimTask, CLASSIFIER_FILE, ENCODER_DIR, ORACLE_FILE,
    SLIM_FORMAT,
};
use super::onnx_encoder::{write_pruned_onnx, ONNX_FILE};
use super::output_folder::{check_output_folder, replace_with_staged};
use crate::util::atomic::staging_dir;

/// How `sieve export` treats its output folder and the run's spec.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Replace an existing non-empty output folder.
    pub force: bool,
    /// The spec the run was made from, when relative paths in the run's
    /// `spec.yaml` cannot be resolved otherwise.
    pub spec: Option<PathBuf>,
}

/// Backends whose encoder `export` knows how to truncate.
const SUPPORTED_BACKENDS: &[&str] = &["candle", "onnx"];

/// Writes the slim model of the run in `run_dir` to `out_dir`, atomically
/// (built beside it, then renamed). Returns the manifest written.
pub fn export_run(run_dir: &Path, out_dir: &Path, options: &ExportOptions) -> Result<SlimManifest> {
    check_output_folder(run_dir, out_dir, options.force)?;
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
    // The run's outputs must be one finished set, made from the model
    // that is about to be truncated.
    let record = RunRecord::verify(run_dir)?;
    let results = SavedResults::read(run_dir)?;
    if results.store_key != record.store_key || results.fingerprint != record.results_fingerprint {
        bail!(
            "{} does not belong to the run recorded in {}; run `sieve run` on the run's spec again",
            run_dir.join("results.json").display(),
            run_dir.join(crate::pipeline::record::RECORD_FILE).display()
        );
    }
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
    let model_path = loaded.resolve(&spec.model.path.value);
    let source_model = std::fs::canonicalize(&model_path).map_err(|_| {
        anyhow::anyhow!(
            "the run's model {} is missing; pass --spec with the spec the run was made from",
            model_path.display()
        )
    })?;
    record.check_model(&source_model)?;
    record.check_data()?;
    let mut spec_params = spec.model.params.clone().unwrap_or_default();
    spec_params.remove("model");
    // Hidden states the run probed (embeddings included): the oracle's
    // inputs are all of them.
    let model_layers = results.layers.len() as u32;
    let oracle = oracle_probe(&results, model_layers, run_dir);

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
    let staging = staging_dir(&parent, &format!(".{name}.tmp-"))?;
    let tmp = staging.path();

    let mut files = BTreeMap::new();
    let mut write_json = |file: &str, value: &crate::probe::TrainedProbe| -> Result<()> {
        let path = tmp.join(file);
        std::fs::write(&path, serde_json::to_vec(value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        files.insert(file.to_string(), sha256_file(&path)?);
        Ok(())
    };
    write_json(CLASSIFIER_FILE, probe)?;
    if let Some(oracle) = oracle {
        write_json(ORACLE_FILE, oracle)?;
    }
    let encoder_dir = tmp.join(ENCODER_DIR);
    std::fs::create_dir(&encoder_dir)
        .with_context(|| format!("cannot create {}", encoder_dir.display()))?;
    let encoder = match backend.as_str() {
        "candle" => candle_encoder(&source_model, &encoder_dir, last_layer, &spec_params)?,
        "onnx" => onnx_encoder(&source_model, &encoder_dir, last_layer, &spec_params)?,
        other => bail!("internal error: no encoder export for backend '{other}'"),
    };
    for entry in std::fs::read_dir(&encoder_dir)
        .with_context(|| format!("cannot read {}", encoder_dir.display()))?
    {
        let path = entry?.path();
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        files.insert(format!("{ENCODER_DIR}/{file_name}"), sha256_file(&path)?);
    }
    let manifest = SlimManifest {
        format: SLIM_FORMAT,
        sieve_version: env!("CARGO_PKG_VERSION").to_string(),
        backend,
        backend_params: encoder.backend_params,
        encoder_model: encoder.model,
        model_name: report["model"]["name"].as_str().unwrap_or("").to_string(),
        encoder_note: encoder.note,
        task,
        subword_pooling: subword_name(spec.data.subword_pooling).into(),
        sentence_pooling: sentence_name(spec.data.sentence_pooling).into(),
        batch_size: spec.model.batch_size,
        last_layer,
        model_layers,
        kept_layers: Some(last_layer),
        hidden: results.hidden,
        neurons,
        classes: results.classes.clone(),
        run_test_score: Some(selection.test),
        files,
        source: Some(SlimSource {
            run_dir: std::fs::canonicalize(run_dir)
                .unwrap_or_else(|_| run_dir.to_path_buf())
                .to_string_lossy()
                .into_owned(),
            spec_dir: std::fs::canonicalize(&loaded.base_dir)
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
            model: source_model.to_string_lossy().into_owned(),
            backend_params: spec_params,
        }),
    };
    // With its own checksum: predict refuses an edited manifest.
    manifest.write(tmp)?;
    // The output folder may have changed while the model was written.
    check_output_folder(run_dir, out_dir, options.force)?;
    replace_with_staged(&staging.keep(), out_dir)?;
    Ok(manifest)
}

/// The run's spec: `RUN_DIR/spec.yaml` with relative paths resolved
/// against the folder of the spec the run was started from (`--spec`, else
/// the path report.json records, else the run folder).
pub(crate) fn run_spec(run_dir: &Path, spec: Option<&Path>) -> Result<LoadedSpec> {
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

/// The encoder written into the slim folder, and how to open it.
struct EncoderExport {
    /// The backend's `model` parameter, relative to the slim folder.
    model: String,
    /// The backend's other parameters for the exported encoder.
    backend_params: serde_json::Map<String, serde_json::Value>,
    /// What was kept and dropped, for the manifest.
    note: String,
}

/// The candle backend's model folder, truncated after hidden state
/// `last_layer`; the backend parameters stay those of the run.
fn candle_encoder(
    source: &Path,
    encoder_dir: &Path,
    last_layer: u32,
    spec_params: &serde_json::Map<String, serde_json::Value>,
) -> Result<EncoderExport> {
    if !source.join("config.json").is_file() {
        bail!(
            "the run's model folder {} has no config.json; pass --spec with the spec the run was made from",
            source.display()
        );
    }
    let truncated = write_truncated_encoder(source, encoder_dir, last_layer)?;
    let kept = match last_layer {
        0 => "the embeddings only (hidden state 0)".to_string(),
        l => format!("the embeddings and encoder layers 0..{l} (hidden states 0..={l})"),
    };
    let note = format!(
        "{kept} of {} encoder layers are kept; the later layers and the pooler are dropped ({} of {} tensors, {:.1} of {:.1} MB)",
        truncated.source_layers,
        truncated.kept_tensors,
        truncated.kept_tensors + truncated.dropped_tensors,
        truncated.written_bytes as f64 / 1e6,
        truncated.source_bytes as f64 / 1e6,
    );
    Ok(EncoderExport {
        model: ENCODER_DIR.to_string(),
        backend_params: spec_params.clone(),
        note,
    })
}

/// The onnx backend's .onnx file, its graph cut after hidden state
/// `last_layer`, with the tokenizer beside it.
fn onnx_encoder(
    source: &Path,
    encoder_dir: &Path,
    last_layer: u32,
    spec_params: &serde_json::Map<String, serde_json::Value>,
) -> Result<EncoderExport> {
    if !source.is_file() {
        bail!(
            "the run's ONNX model {} is not a file; pass --spec with the spec the run was made from",
            source.display()
        );
    }
    let pruned = write_pruned_onnx(source, spec_params, encoder_dir, last_layer)?;
    let note = format!(
        "the graph is cut after hidden state {last_layer} of {}: its outputs are hidden states 0..={last_layer}, and it keeps the {} of {} nodes and the weights they need ({:.1} of {:.1} MB)",
        pruned.source_layers,
        pruned.kept_nodes,
        pruned.source_nodes,
        pruned.written_bytes as f64 / 1e6,
        pruned.source_bytes as f64 / 1e6,
    );
    Ok(EncoderExport {
        model: format!("{ENCODER_DIR}/{ONNX_FILE}"),
        backend_params: pruned.backend_params,
        note,
    })
}

/// The run's oracle probe when results.json holds one that fits the model
/// (every feature of `model_layers` hidden states); otherwise the export
/// goes on without it and says what `sieve bench --slim` will need.
fn oracle_probe<'r>(
    results: &'r SavedResults,
    model_layers: u32,
    run_dir: &Path,
) -> Option<&'r crate::probe::TrainedProbe> {
    let fits = |p: &crate::probe::TrainedProbe| {
        p.features == model_layers as usize * results.hidden && p.outputs == results.classes.len()
    };
    match results.oracle_probe.as_ref() {
        Some(oracle) if fits(oracle) => Some(oracle),
        found => {
            tracing::warn!(
                "{} {}; the slim model is exported without oracle.json, so `sieve bench --slim` cannot time the full model on it (run `sieve run --recompute` on the run's spec, then export again)",
                run_dir.join("results.json").display(),
                if found.is_some() {
                    "has an oracle probe that does not match the model"
                } else {
                    "has no oracle probe (runs made by an older sieve did not save it)"
                }
            );
            None
        }
    }
}

fn read_report(run_dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(run_dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
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
