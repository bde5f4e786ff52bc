//! A loaded slim model: the backend opened on the truncated encoder in
//! `encoder/`, which stops at the manifest's last layer, and the classifier
//! on the selected neurons. For `sieve bench --slim`, also the full model
//! it was cut from with the run's oracle probe.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sieve_core::{
    EncodeRequest, EncoderBox, PluginKind, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};

use crate::plugins::{plugin_dir, LoadedPlugin, PluginRegistry};
use crate::probe::TrainedProbe;

use super::manifest::{SlimManifest, SlimTask, CLASSIFIER_FILE, MANIFEST_FILE, ORACLE_FILE};

/// Units handed to the backend per call (as `sieve run` does, so the same
/// sentences are batched together and give the same activations).
const UNITS_PER_CALL: usize = 256;

/// How `sieve predict` prints its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// `word/TAG` tokens per line (tagging) or one label per line.
    #[default]
    Text,
    /// One JSON object per input line.
    Json,
}

/// A verified slim model, ready to label text.
pub struct SlimModel {
    pub manifest: SlimManifest,
    labeler: Labeler,
    /// Kept open while the encoder is in use.
    registry: Arc<PluginRegistry>,
}

/// The full model the slim one was cut from, with the run's oracle probe
/// on every feature of every hidden state: what `sieve bench --slim`
/// times the slim model against.
pub struct FullModel {
    labeler: Labeler,
    /// The model file or folder it was opened from.
    pub model: PathBuf,
    /// Encoder layers K (hidden states 0..=K).
    pub layers: u32,
    /// Classifier inputs: every neuron of hidden states 0..=K.
    pub features: usize,
    _registry: Arc<PluginRegistry>,
}

/// An encoder and a linear probe on some of its hidden-state columns.
struct Labeler {
    probe: TrainedProbe,
    plugin: LoadedPlugin,
    encoder: EncoderBox,
    task: SlimTask,
    subword_pooling: SubwordPooling,
    sentence_pooling: SentencePooling,
    batch_size: u32,
    /// Hidden states computed per forward pass: 0..=last_layer.
    last_layer: u32,
    hidden: usize,
    /// Probe inputs as columns of a backend row (`layer * hidden +
    /// neuron`), in input order; `None`: the whole row, as is.
    columns: Option<Vec<usize>>,
}

impl SlimModel {
    /// Verifies `dir` (format version, checksums) and opens its encoder
    /// with the backend plugin found in `plugins` (default: the usual
    /// discovery of `sieve run`).
    pub fn open(dir: &Path, plugins: Option<&Path>) -> Result<Self> {
        let manifest = SlimManifest::load_verified(dir)?;
        let (plugin_folder, source) =
            plugin_dir(plugins).context("cannot locate the plugin folder")?;
        let registry = Arc::new(PluginRegistry::discover(&plugin_folder, source)?);
        let probe: TrainedProbe = read_probe(&dir.join(CLASSIFIER_FILE))?;
        if probe.features != manifest.neurons.len() || probe.outputs != manifest.classes.len() {
            bail!(
                "{} does not match the manifest ({} neurons, {} classes); re-export the model with `sieve export`",
                dir.join(CLASSIFIER_FILE).display(),
                manifest.neurons.len(),
                manifest.classes.len()
            );
        }
        let encoder_path = manifest.encoder_path(dir)?;
        let mut params = manifest.backend_params.clone();
        params.insert(
            "model".into(),
            encoder_path.to_string_lossy().into_owned().into(),
        );
        let (plugin, encoder) = open_encoder(
            &registry,
            &manifest,
            &params,
            &encoder_path,
            "re-export the model with `sieve export`",
        )?;
        let hidden = manifest.hidden;
        let columns = manifest
            .neurons
            .iter()
            .map(|&[l, n]| l as usize * hidden + n as usize)
            .collect();
        let labeler = Labeler::new(
            &manifest,
            probe,
            plugin,
            encoder,
            manifest.last_layer,
            Some(columns),
        )?;
        Ok(Self {
            manifest,
            labeler,
            registry,
        })
    }

    /// The full model this slim model was exported from (the run's model,
    /// or `full_model` in its place) with the oracle probe saved as
    /// `oracle.json`, through the same plugin folder.
    pub fn open_full(&self, dir: &Path, full_model: Option<&Path>) -> Result<FullModel> {
        let manifest = &self.manifest;
        let oracle_path = dir.join(ORACLE_FILE);
        if !manifest.files.contains_key(ORACLE_FILE) {
            bail!(
                "{} has no {ORACLE_FILE} (the oracle probe of the run): the run was made by an older sieve; run `sieve run --recompute` on its spec and export again",
                dir.display()
            );
        }
        let source = manifest.source.as_ref().with_context(|| {
            format!(
                "{} does not say which model it was exported from; pass --full-model with the run's model",
                dir.join(MANIFEST_FILE).display()
            )
        })?;
        let model = match full_model {
            Some(path) => path.to_path_buf(),
            None => PathBuf::from(&source.model),
        };
        if !model.exists() {
            bail!(
                "the full model {} is missing{}; pass --full-model with the model the run used",
                model.display(),
                if full_model.is_none() {
                    format!(" (recorded in {})", dir.join(MANIFEST_FILE).display())
                } else {
                    String::new()
                }
            );
        }
        let probe = read_probe(&oracle_path)?;
        let mut params = source.backend_params.clone();
        params.insert("model".into(), model.to_string_lossy().into_owned().into());
        let (plugin, encoder) = open_encoder(
            &self.registry,
            manifest,
            &params,
            &model,
            "pass the model the run used with --full-model",
        )?;
        let layers = encoder.describe().num_layers;
        let features = (layers as usize + 1) * manifest.hidden;
        if probe.features != features || probe.outputs != manifest.classes.len() {
            bail!(
                "{} ({} inputs, {} outputs) does not fit the full model {} ({} hidden states x {}, {} classes); pass the model the run used with --full-model",
                oracle_path.display(),
                probe.features,
                probe.outputs,
                model.display(),
                layers + 1,
                manifest.hidden,
                manifest.classes.len()
            );
        }
        let labeler = Labeler::new(manifest, probe, plugin, encoder, layers, None)?;
        Ok(FullModel {
            labeler,
            model,
            layers,
            features,
            _registry: Arc::clone(&self.registry),
        })
    }

    /// Labels of each line: one per word (tagging) or one per line.
    /// Blank lines get no labels.
    pub fn predict(&self, lines: &[String]) -> Result<Vec<Vec<u32>>> {
        self.labeler.predict(lines)
    }

    /// Class name of a label index.
    pub fn class(&self, label: u32) -> &str {
        &self.manifest.classes[label as usize]
    }

    /// Prints `lines` with their labels in `format`.
    pub fn write(
        &self,
        lines: &[String],
        labels: &[Vec<u32>],
        format: OutputFormat,
        out: &mut impl Write,
    ) -> Result<()> {
        for (line, labels) in lines.iter().zip(labels) {
            match (self.manifest.task, format) {
                (SlimTask::Tagging, OutputFormat::Text) => {
                    let tokens: Vec<String> = line
                        .split_whitespace()
                        .zip(labels)
                        .map(|(w, &l)| format!("{w}/{}", self.class(l)))
                        .collect();
                    writeln!(out, "{}", tokens.join(" "))?;
                }
                (SlimTask::Tagging, OutputFormat::Json) => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let tags: Vec<&str> = labels.iter().map(|&l| self.class(l)).collect();
                    let object = serde_json::json!({"words": words, "tags": tags});
                    writeln!(out, "{object}")?;
                }
                (SlimTask::Classification, OutputFormat::Text) => {
                    let label = labels.first().map(|&l| self.class(l)).unwrap_or("");
                    writeln!(out, "{label}")?;
                }
                (SlimTask::Classification, OutputFormat::Json) => {
                    let label = labels.first().map(|&l| self.class(l));
                    let object = serde_json::json!({"text": line, "label": label});
                    writeln!(out, "{object}")?;
                }
            }
        }
        Ok(())
    }
}

impl FullModel {
    /// Labels of each line, from every hidden state and the oracle probe.
    pub fn predict(&self, lines: &[String]) -> Result<Vec<Vec<u32>>> {
        self.labeler.predict(lines)
    }
}

/// Reads a saved probe and checks its arrays against its own shape.
fn read_probe(path: &Path) -> Result<TrainedProbe> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let probe: TrainedProbe = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is damaged; re-export the model with `sieve export`",
            path.display()
        )
    })?;
    let consistent = probe.weights.len() == probe.features * probe.outputs
        && probe.bias.len() == probe.outputs
        && probe
            .standardization
            .as_ref()
            .is_none_or(|(m, s)| m.len() == probe.features && s.len() == probe.features);
    if !consistent {
        bail!(
            "{} is damaged (its arrays do not match its {} inputs x {} outputs); re-export the model with `sieve export`",
            path.display(),
            probe.features,
            probe.outputs
        );
    }
    Ok(probe)
}

/// Opens the manifest's backend on `params`; the encoder must have the
/// manifest's hidden size and reach its last layer.
fn open_encoder(
    registry: &PluginRegistry,
    manifest: &SlimManifest,
    params: &serde_json::Map<String, serde_json::Value>,
    model: &Path,
    fix: &str,
) -> Result<(LoadedPlugin, EncoderBox)> {
    let plugin = registry
        .find(&manifest.backend, PluginKind::Backend)?
        .clone();
    let encoder = registry.open_backend(&manifest.backend, &serde_json::to_string(params)?)?;
    let description = encoder.describe();
    if description.hidden_size as usize != manifest.hidden
        || description.num_layers < manifest.last_layer
    {
        bail!(
            "the encoder {} ({} layers x {}) does not match the manifest (layer {} x {}); {fix}",
            model.display(),
            description.num_layers,
            description.hidden_size,
            manifest.last_layer,
            manifest.hidden
        );
    }
    Ok((plugin, encoder))
}

impl Labeler {
    fn new(
        manifest: &SlimManifest,
        probe: TrainedProbe,
        plugin: LoadedPlugin,
        encoder: EncoderBox,
        last_layer: u32,
        columns: Option<Vec<usize>>,
    ) -> Result<Self> {
        let subword_pooling = match manifest.subword_pooling.as_str() {
            "first" => SubwordPooling::First,
            "last" => SubwordPooling::Last,
            "average" => SubwordPooling::Average,
            other => bail!("the manifest names an unknown subword pooling '{other}'"),
        };
        let sentence_pooling = match manifest.sentence_pooling.as_str() {
            "cls" => SentencePooling::Cls,
            "mean" => SentencePooling::Mean,
            other => bail!("the manifest names an unknown sentence pooling '{other}'"),
        };
        Ok(Self {
            probe,
            plugin,
            encoder,
            task: manifest.task,
            subword_pooling,
            sentence_pooling,
            batch_size: manifest.batch_size,
            last_layer,
            hidden: manifest.hidden,
            columns,
        })
    }

    fn predict(&self, lines: &[String]) -> Result<Vec<Vec<u32>>> {
        let word_level = self.task == SlimTask::Tagging;
        let units: Vec<(usize, TextUnit)> = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let unit = if word_level {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    TextUnit::words(&words)
                } else {
                    TextUnit::sentence(line, None)
                };
                (i, unit)
            })
            .collect();
        let mut labels = vec![Vec::new(); lines.len()];
        for chunk in units.chunks(UNITS_PER_CALL) {
            let request = EncodeRequest {
                units: chunk.iter().map(|(_, u)| u.clone()).collect(),
                level: if word_level {
                    RowLevel::Word
                } else {
                    RowLevel::Sentence
                },
                subword_pooling: self.subword_pooling,
                sentence_pooling: self.sentence_pooling,
                last_layer: self.last_layer,
                batch_size: self.batch_size,
            };
            let rows = self
                .plugin
                .check_result("encode", self.encoder.encode(&request))?;
            let layers = rows.layers as usize;
            let expected: Vec<u32> = chunk
                .iter()
                .map(|(_, u)| if word_level { u.words.len() as u32 } else { 1 })
                .collect();
            let consistent = rows.rows_per_unit.as_slice() == expected.as_slice()
                && layers == self.last_layer as usize + 1
                && rows.hidden as usize == self.hidden
                && rows.values.len() as u64 == rows.rows * (layers * self.hidden) as u64;
            if !consistent {
                bail!(
                    "backend '{}' returned rows that do not match the request; this is a bug in the plugin",
                    self.plugin.name
                );
            }
            let n = rows.rows as usize;
            let predicted = match &self.columns {
                Some(columns) => {
                    let mut x = Vec::with_capacity(n * columns.len());
                    for row in rows.values.chunks_exact(layers * self.hidden) {
                        x.extend(columns.iter().map(|&c| row[c]));
                    }
                    self.probe.predict_classes(&x, n)
                }
                // Every column in backend order is the probe's input order
                // (layer-major, as the store lays out the oracle's columns).
                None => self.probe.predict_classes(&rows.values, n),
            };
            let mut predicted = predicted.into_iter();
            for ((line, _), &count) in chunk.iter().zip(&expected) {
                labels[*line] = predicted.by_ref().take(count as usize).collect();
            }
        }
        Ok(labels)
    }
}
