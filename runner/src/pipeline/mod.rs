//! `sieve run`: spec -> backend -> activation store -> probes -> report.

pub mod control;
pub mod corpora;
pub mod downstream;
pub mod extract;
pub mod fingerprints;
pub mod host;
pub mod layers;
pub mod preflight;
pub mod probing;
pub mod record;
pub mod resources;
pub mod saved;
pub mod selection;
pub mod sharding;
pub mod shared_probes;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use sieve_core::{ModelDescription, PluginKind};
use tracing::{info, warn};

use crate::plugins::{plugin_dir, PluginRegistry};
use crate::probe::Task;
use crate::report::{
    DataSummary, ExtractionSummary, LayerRow, ModelSummary, OracleSummary, Report, Timings,
};
use crate::spec::{LoadedSpec, TaskSpec};
use crate::store::{ActivationStore, Manifest};

use control::ControlSummary;
use corpora::{encode_targets, read_splits, EncodedTargets, Splits};
use extract::{Extraction, Extractor};
use fingerprints::InputFingerprints;
use layers::{oracle_score, probe_layers, LayerPlan};
use probing::{Columns, HeldColumns, ProbeBench, Score};
use saved::{results_fingerprint, PluginStamp, SavedResults};
use selection::SelectionRun;

/// Opens the plugin registry the spec points at.
pub fn open_registry(loaded: &LoadedSpec) -> Result<PluginRegistry> {
    let from_spec = loaded
        .spec
        .plugins
        .as_ref()
        .map(|p| loaded.resolve(&p.value));
    let (dir, source) =
        plugin_dir(from_spec.as_deref()).context("cannot locate the plugin folder")?;
    Ok(PluginRegistry::discover(&dir, source)?)
}

/// Fails unless every plugin the spec names is in the registry with the
/// right kind, naming the spec line that asks for it. Runs before any work
/// so a typo in a selector name does not cost an extraction.
pub fn check_plugins(loaded: &LoadedSpec, registry: &PluginRegistry) -> Result<()> {
    let spec = &loaded.spec;
    let mut wanted = vec![("model.backend", &spec.model.backend, PluginKind::Backend)];
    let stages = [
        ("selection.clustering.selector", &spec.selection.clustering),
        ("selection.ranking.selector", &spec.selection.ranking),
    ];
    for (field, stage) in stages {
        if let Some(stage) = stage {
            wanted.push((field, &stage.selector, PluginKind::Selector));
        }
    }
    for stage in &spec.selection.compare {
        wanted.push((
            "selection.compare.selector",
            &stage.selector,
            PluginKind::Selector,
        ));
    }
    for (field, name, kind) in wanted {
        registry.find(&name.value, kind).with_context(|| {
            format!(
                "{}: line {}, column {}: field `{field}` names plugin '{}'",
                loaded.path.display(),
                name.referenced.line(),
                name.referenced.column(),
                name.value
            )
        })?;
    }
    Ok(())
}

/// The selector plugins the spec names, with their versions, in spec order.
fn selector_stamps(loaded: &LoadedSpec, registry: &PluginRegistry) -> Result<Vec<PluginStamp>> {
    let selection = &loaded.spec.selection;
    let stages = [&selection.clustering, &selection.ranking]
        .into_iter()
        .flatten()
        .chain(&selection.compare);
    stages
        .map(|stage| {
            let plugin = registry.find(&stage.selector.value, PluginKind::Selector)?;
            Ok(PluginStamp {
                name: plugin.name.clone(),
                version: plugin.version.clone(),
                interface_version: plugin.interface_version,
            })
        })
        .collect()
}

/// The backend's parameters: the spec's `params` plus the resolved model path.
pub fn backend_params(loaded: &LoadedSpec) -> Result<String> {
    let model = &loaded.spec.model;
    let mut params = model.params.clone().unwrap_or_default();
    let path = loaded.resolve(&model.path.value);
    params.insert("model".into(), path.to_string_lossy().into_owned().into());
    Ok(serde_json::to_string(&params)?)
}

/// How `sieve run` treats earlier results.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Train every probe again even when `results.json` matches.
    pub recompute: bool,
}

/// Everything extraction needs, opened from a spec: the backend, the data
/// and the store entry the activations belong in.
pub struct ExtractionSetup {
    pub registry: PluginRegistry,
    pub plugin: crate::plugins::LoadedPlugin,
    pub encoder: sieve_core::EncoderBox,
    pub description: ModelDescription,
    pub splits: Splits,
    pub targets: EncodedTargets,
    /// The extraction's identity (its splits are filled in by `finish`).
    pub manifest: Manifest,
    /// The content hashes of every input file, as keyed and recorded.
    pub inputs: InputFingerprints,
    pub store: ActivationStore,
    pub load_seconds: f64,
    pub read_seconds: f64,
}

impl ExtractionSetup {
    pub fn open(loaded: &LoadedSpec) -> Result<ExtractionSetup> {
        let stage = Instant::now();
        let registry = open_registry(loaded)?;
        check_plugins(loaded, &registry)?;
        preflight::check_plugin_params(loaded, &registry)?;
        let backend_name = &loaded.spec.model.backend.value;
        let plugin = registry.find(backend_name, PluginKind::Backend)?.clone();
        let encoder = registry.open_backend(backend_name, &backend_params(loaded)?)?;
        let description = encoder.describe();
        info!(
            "backend '{}' {} ({}): {} '{}', {} layers x {}",
            plugin.name,
            plugin.version,
            plugin.file.display(),
            description.architecture,
            description.name,
            description.num_layers,
            description.hidden_size
        );
        let load_seconds = stage.elapsed().as_secs_f64();

        let stage = Instant::now();
        let splits = read_splits(loaded)?;
        let targets = encode_targets(loaded.spec.data.task, &splits)?;
        let read_seconds = stage.elapsed().as_secs_f64();
        let inputs = InputFingerprints::of(loaded, &splits)?;
        let identity = fingerprints::extraction_identity(
            loaded,
            (&plugin.name, &plugin.version),
            &description,
            &inputs,
        )?;
        let manifest = Manifest::new(identity, targets.classes.clone())?;
        let store_dir = loaded
            .spec
            .store
            .dir
            .as_ref()
            .map(|d| loaded.resolve(d))
            .unwrap_or_else(|| loaded.output_dir().join("activations"));
        Ok(ExtractionSetup {
            registry,
            plugin,
            encoder,
            description,
            splits,
            targets,
            manifest,
            inputs,
            store: ActivationStore::new(&store_dir),
            load_seconds,
            read_seconds,
        })
    }

    /// The extractor over every hidden state of the backend.
    pub fn extractor<'a>(&'a self, loaded: &'a LoadedSpec) -> Extractor<'a> {
        Extractor {
            plugin: &self.plugin,
            encoder: &self.encoder,
            loaded,
            last_layer: self.description.num_layers,
        }
    }
}

/// Runs the experiment a spec describes and writes its report.
pub fn run_experiment(loaded: &LoadedSpec, options: RunOptions) -> Result<Report> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let output = loaded.output_dir();

    let setup = ExtractionSetup::open(loaded)?;
    timings.load_plugins = setup.load_seconds;
    timings.read_data = setup.read_seconds;
    let stage = Instant::now();
    let extraction = setup.extractor(loaded).extract_or_reuse(
        &setup.store,
        setup.manifest.clone(),
        &setup.splits,
        &setup.targets,
    )?;
    timings.extraction = stage.elapsed().as_secs_f64();
    let ExtractionSetup {
        registry,
        plugin,
        description,
        splits,
        targets,
        ..
    } = &setup;

    let [train, dev, test] = &extraction.stored.splits[..] else {
        anyhow::bail!("internal error: the store returned the wrong number of splits");
    };
    let budget = resources::MemoryBudget::of(loaded);
    info!("{}", budget.describe());
    let bench = ProbeBench::new(
        [train, dev, test],
        probe_task(loaded.spec.data.task, targets),
        &loaded.spec.probe,
        loaded.spec.seed,
    )
    .with_in_memory_mb(budget.mb);
    let held = HeldColumns::default();
    let bench = bench.with_held(&held);
    let fingerprint = results_fingerprint(
        loaded,
        &extraction.stored.manifest.key,
        &selector_stamps(loaded, registry)?,
        budget.mb,
    )?;
    let saved = if options.recompute {
        None
    } else {
        SavedResults::matching(&output, &fingerprint)
    };
    let results_reused = saved.is_some();
    let results = match saved {
        Some(saved) => {
            info!(
                "reusing probe scores and selection from {} (`sieve run --recompute` trains them again)",
                output.join(saved::RESULTS_FILE).display()
            );
            saved
        }
        None => {
            let stage = Instant::now();
            let hidden = description.hidden_size as usize;
            let states = description.num_hidden_states();
            let plan = layer_plan(&loaded.spec.selection);
            let (layer_scores, oracle_probe) = probe_layers(&bench, states, hidden, plan)?;
            timings.layer_probes = stage.elapsed().as_secs_f64();
            let outcome = SelectionRun {
                registry,
                bench: &bench,
                spec: &loaded.spec.selection,
                hidden,
                states: states as usize,
                notes: Default::default(),
                shared_probes: Default::default(),
            }
            .run(&layer_scores)?;
            let mut results = SavedResults::new(
                fingerprint,
                extraction.stored.manifest.key.clone(),
                targets.classes.clone(),
                hidden,
                layer_scores,
                outcome,
            );
            results.oracle_probe = Some(oracle_probe);
            if loaded.spec.control_task {
                results.control = Some(run_control_task(&bench, splits, &results)?);
            }
            if let Some(spec) = &loaded.spec.downstream {
                let stage = Instant::now();
                results.downstream = Some(downstream::run_downstream(&bench, &results, spec)?);
                timings.downstream = stage.elapsed().as_secs_f64();
            }
            results
        }
    };
    timings.selection = results.outcome.timings.clone();
    timings.total = started.elapsed().as_secs_f64();

    let mut report = assemble_report(
        loaded,
        plugin,
        description,
        splits,
        targets,
        &bench,
        &results,
        &extraction,
        results_reused,
        timings,
    )?;
    if budget.is_reduced() {
        let text = format!(
            "{}: matrices above it were streamed, and shuffled probes on streamed rows can differ from a run on a machine with more memory",
            budget.describe()
        );
        warn!("{text}");
        report.warnings.push(text);
    }
    write_outputs(loaded, &setup.inputs, &results, results_reused, &mut report)?;
    info!("report written to {}", output.join("report.md").display());
    Ok(report)
}

/// Writes the run's outputs as one set, sealed by `outputs.json` (see
/// [`record`]): the old seal goes first, the new one last.
fn write_outputs(
    loaded: &LoadedSpec,
    inputs: &InputFingerprints,
    results: &SavedResults,
    results_reused: bool,
    report: &mut Report,
) -> Result<()> {
    let output = loaded.output_dir();
    record::RunRecord::retract(&output)?;
    if !results_reused {
        results.write(&output)?;
    }
    attach_plots(&output, report);
    crate::report::write_report(&output, report)?;
    // What ran is kept beside what it produced.
    crate::util::atomic::write_atomic(&output.join("spec.yaml"), loaded.text.as_bytes())?;
    let mut files: Vec<String> = ["spec.yaml", saved::RESULTS_FILE, "report.json", "report.md"]
        .map(String::from)
        .to_vec();
    files.extend(report.plots.iter().cloned());
    record::RunRecord::seal(
        &output,
        &results.store_key,
        &results.fingerprint,
        inputs,
        &files,
    )?;
    Ok(())
}

/// The control task for the oracle and the final selection.
fn run_control_task(
    bench: &ProbeBench<'_>,
    splits: &Splits,
    results: &SavedResults,
) -> Result<ControlSummary> {
    let Task::Classification { num_classes } = bench.task else {
        anyhow::bail!("control tasks need a classification task");
    };
    let labels = control::control_labels(&splits.splits, bench.labels[0], num_classes, bench.seed)?;
    let control = bench.with_labels([&labels[0], &labels[1], &labels[2]]);
    let oracle_score = oracle_score(&results.layers)?;
    let columns = bench.train.cols;
    let oracle = control::control_row(&control, Columns::Range(0..columns), oracle_score)?;
    let selection = match (&results.outcome.selection, results.selected_columns()) {
        (Some(sel), Some(kept)) => {
            let task = Score {
                dev: sel.dev,
                test: sel.test,
            };
            Some(control::control_row(&control, Columns::List(kept), task)?)
        }
        _ => None,
    };
    Ok(ControlSummary { oracle, selection })
}

/// Draws the charts; a chart that cannot be drawn is a warning in the
/// report, never a failed run.
fn attach_plots(output: &std::path::Path, report: &mut Report) {
    match crate::report::write_plots(output, report) {
        Ok(files) => {
            report.plots = files
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
        }
        Err(error) => {
            let text = format!("charts not drawn: {error:#}");
            warn!("{text}");
            report.warnings.push(text);
        }
    }
}

fn probe_task(task: TaskSpec, targets: &EncodedTargets) -> Task {
    match task {
        TaskSpec::Regression => Task::Regression,
        // Unseen dev/test labels get index `classes.len()`; the probe has
        // one output per train class, so they are always counted wrong.
        _ => Task::Classification {
            num_classes: targets.classes.len(),
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn assemble_report(
    loaded: &LoadedSpec,
    plugin: &crate::plugins::LoadedPlugin,
    description: &ModelDescription,
    splits: &Splits,
    targets: &EncodedTargets,
    bench: &ProbeBench<'_>,
    results: &SavedResults,
    extraction: &Extraction,
    results_reused: bool,
    timings: Timings,
) -> Result<Report> {
    let spec = &loaded.spec;
    let states = description.num_hidden_states();
    let layer_scores = &results.layers;
    let oracle = oracle_score(layer_scores)?;
    let majority = bench.majority_baseline();
    let mut warnings = Vec::new();
    if let Some(baseline) = majority {
        if oracle.dev <= baseline.dev {
            let text = format!(
                "the oracle probe ({:.2}% dev) does not beat the majority class ({:.2}% dev): \
                 the features carry no usable signal with these settings, and any selection is meaningless. \
                 Try `sentence_pooling: mean`, `probe: {{standardize: true}}` or more epochs",
                oracle.dev * 100.0,
                baseline.dev * 100.0
            );
            warn!("{text}");
            warnings.push(text);
        }
    }
    for note in &results.outcome.notes {
        warn!("{note}");
        warnings.push(note.clone());
    }
    if !targets.unseen.is_empty() {
        let text = format!(
            "{} dev/test label(s) never occur in train and are always counted wrong: {}",
            targets.unseen.len(),
            targets.unseen.join(", ")
        );
        warn!("{text}");
        warnings.push(text);
    }
    let manifest = &extraction.stored.manifest;
    let word_level = spec.data.is_word_level();
    let total_features = (states * description.hidden_size) as usize;
    Ok(Report {
        name: spec.name.clone().unwrap_or_else(|| spec_stem(&loaded.path)),
        spec: loaded.path.display().to_string(),
        seed: spec.seed,
        model: ModelSummary {
            name: description.name.to_string(),
            backend: plugin.name.clone(),
            backend_version: plugin.version.clone(),
            architecture: description.architecture.to_string(),
            layers: states,
            encoder_layers: description.num_layers,
            hidden: description.hidden_size,
            features: states * description.hidden_size,
        },
        data: DataSummary {
            task: format!("{:?}", spec.data.task).to_lowercase(),
            files: splits
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            classes: targets.classes.len(),
            train_rows: splits.rows(0, word_level),
            dev_rows: splits.rows(1, word_level),
            test_rows: splits.rows(2, word_level),
            unseen_labels: targets.unseen.clone(),
        },
        metric: if spec.data.task == TaskSpec::Regression {
            "pearson"
        } else {
            "accuracy"
        }
        .into(),
        probe: spec.probe.clone(),
        majority_baseline: majority,
        oracle: OracleSummary {
            features: (states * description.hidden_size) as usize,
            dev: oracle.dev,
            test: oracle.test,
        },
        layers: layer_scores.iter().map(LayerRow::from).collect(),
        extraction: ExtractionSummary {
            reused: extraction.reused,
            store: extraction.stored.dir.display().to_string(),
            subword_tokens: manifest.subword_tokens,
            seconds: manifest.extraction_seconds,
            tokens_per_second: manifest.subword_tokens as f64
                / manifest.extraction_seconds.max(1e-9),
            windowed_units: manifest.windowed_units,
        },
        layer_selector: (results.outcome.layer_selector.as_ref())
            .map(|c| crate::report::LayerSelectorSummary::new(c, total_features)),
        clustering: (results.outcome.clustering.as_ref())
            .map(|c| crate::report::ClusteringSummary::new(c, total_features)),
        selection: (results.outcome.selection.as_ref())
            .map(|s| crate::report::SelectionSummary::new(s, total_features)),
        comparison: results.outcome.comparison.clone(),
        control: results.control.clone(),
        downstream: results.downstream.clone(),
        results_reused,
        plots: Vec::new(),
        warnings,
        timings,
    })
}

fn spec_stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from("run").display().to_string())
}

/// Which per-layer probes the spec's LayerSelector settings ask for (all
/// of them without a LayerSelector).
fn layer_plan(selection: &crate::spec::SelectionSpec) -> LayerPlan {
    match &selection.layer_selector {
        Some(ls) => LayerPlan {
            single_layers: ls.single_layers,
            stop_at_choice: ls.early_stop.then_some(ls.delta),
        },
        None => LayerPlan::default(),
    }
}
