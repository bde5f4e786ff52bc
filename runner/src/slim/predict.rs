//! A loaded slim model: the backend opened on `encoder/`, stopping after
//! the manifest's last layer, and the classifier on the selected neurons.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sieve_core::{
    EncodeRequest, EncoderBox, PluginKind, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};

use crate::plugins::{plugin_dir, LoadedPlugin, PluginRegistry};
use crate::probe::TrainedProbe;

use super::manifest::{SlimManifest, SlimTask, CLASSIFIER_FILE, ENCODER_DIR};

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
    probe: TrainedProbe,
    plugin: LoadedPlugin,
    encoder: EncoderBox,
    /// Kept open while the encoder is in use.
    _registry: PluginRegistry,
    subword_pooling: SubwordPooling,
    sentence_pooling: SentencePooling,
    /// Hidden states computed per forward pass (`--full` uses them all).
    last_layer: u32,
}

impl SlimModel {
    /// Verifies `dir` (format version, checksums) and opens its encoder
    /// with the backend plugin found in `plugins` (default: the usual
    /// discovery of `sieve run`).
    pub fn open(dir: &Path, plugins: Option<&Path>) -> Result<Self> {
        let manifest = SlimManifest::load_verified(dir)?;
        let classifier_path = dir.join(CLASSIFIER_FILE);
        let probe: TrainedProbe = serde_json::from_slice(
            &std::fs::read(&classifier_path)
                .with_context(|| format!("cannot read {}", classifier_path.display()))?,
        )
        .with_context(|| {
            format!(
                "{} is damaged; re-export the model with `sieve export`",
                classifier_path.display()
            )
        })?;
        let shapes_agree = probe.features == manifest.neurons.len()
            && probe.outputs == manifest.classes.len()
            && probe.weights.len() == probe.features * probe.outputs
            && probe.bias.len() == probe.outputs
            && probe
                .standardization
                .as_ref()
                .is_none_or(|(m, s)| m.len() == probe.features && s.len() == probe.features);
        if !shapes_agree {
            bail!(
                "{} does not match the manifest ({} neurons, {} classes); re-export the model with `sieve export`",
                classifier_path.display(),
                manifest.neurons.len(),
                manifest.classes.len()
            );
        }
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
        let (plugin_folder, source) =
            plugin_dir(plugins).context("cannot locate the plugin folder")?;
        let registry = PluginRegistry::discover(&plugin_folder, source)?;
        let plugin = registry
            .find(&manifest.backend, PluginKind::Backend)?
            .clone();
        let mut params = manifest.backend_params.clone();
        let encoder_dir = dir.join(ENCODER_DIR);
        params.insert(
            "model".into(),
            encoder_dir.to_string_lossy().into_owned().into(),
        );
        let encoder = registry.open_backend(&manifest.backend, &serde_json::to_string(&params)?)?;
        let description = encoder.describe();
        if description.hidden_size as usize != manifest.hidden
            || description.num_layers < manifest.last_layer
        {
            bail!(
                "the encoder in {} ({} layers x {}) does not match the manifest (layer {} x {}); re-export the model with `sieve export`",
                encoder_dir.display(),
                description.num_layers,
                description.hidden_size,
                manifest.last_layer,
                manifest.hidden
            );
        }
        let last_layer = manifest.last_layer;
        Ok(Self {
            manifest,
            probe,
            plugin,
            encoder,
            _registry: registry,
            subword_pooling,
            sentence_pooling,
            last_layer,
        })
    }

    /// Runs every layer of the encoder instead of stopping at the last
    /// selected one (for timing the saving; the labels are the same).
    pub fn run_full_encoder(&mut self) {
        self.last_layer = self.encoder.describe().num_layers;
    }

    /// Labels of each line: one per word (tagging) or one per line.
    /// Blank lines get no labels.
    pub fn predict(&self, lines: &[String]) -> Result<Vec<Vec<u32>>> {
        let word_level = self.manifest.task == SlimTask::Tagging;
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
                batch_size: self.manifest.batch_size,
            };
            let rows = self
                .plugin
                .check_result("encode", self.encoder.encode(&request))?;
            let layers = rows.layers as usize;
            let hidden = rows.hidden as usize;
            let expected: Vec<u32> = chunk
                .iter()
                .map(|(_, u)| if word_level { u.words.len() as u32 } else { 1 })
                .collect();
            let consistent = rows.rows_per_unit.as_slice() == expected.as_slice()
                && layers == self.last_layer as usize + 1
                && hidden == self.manifest.hidden
                && rows.values.len() as u64 == rows.rows * (layers * hidden) as u64;
            if !consistent {
                bail!(
                    "backend '{}' returned rows that do not match the request; this is a bug in the plugin",
                    self.plugin.name
                );
            }
            let n = rows.rows as usize;
            let mut x = Vec::with_capacity(n * self.manifest.neurons.len());
            for row in rows.values.chunks_exact(layers * hidden) {
                x.extend(
                    self.manifest
                        .neurons
                        .iter()
                        .map(|&[l, h]| row[l as usize * hidden + h as usize]),
                );
            }
            let mut predicted = self.probe.predict_classes(&x, n).into_iter();
            for ((line, _), &count) in chunk.iter().zip(&expected) {
                labels[*line] = predicted.by_ref().take(count as usize).collect();
            }
        }
        Ok(labels)
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
