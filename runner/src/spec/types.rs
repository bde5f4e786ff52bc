//! The spec's schema. Field names are the YAML keys; defaults reproduce the
//! paper's setup where one exists.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use sieve_core::{SentencePooling, SubwordPooling};

use crate::data::DataFormat;
use crate::probe::ProbeSettings;

/// A whole experiment.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Shown in reports; defaults to the spec file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Every random choice (probe initialisation, shuffling, cluster
    /// representatives) derives from this seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Worker threads for the backend and the probe; all cores if absent.
    /// Checked while parsing (see [`threads_in_range`]), so an error points
    /// at the spec's line.
    #[serde(default, deserialize_with = "threads_in_range")]
    pub threads: Option<usize>,
    /// The run folder: report.md, report.json, run.log, activations.
    pub output: Spanned<PathBuf>,
    /// Plugin folder; overrides `SIEVE_PLUGIN_DIR` and the default (the
    /// folder holding the `sieve` binary).
    #[serde(default)]
    pub plugins: Option<Spanned<PathBuf>>,
    pub model: ModelSpec,
    pub data: DataSpec,
    #[serde(default)]
    pub probe: ProbeSettings,
    #[serde(default)]
    pub store: StoreSpec,
    /// LayerSelector, clustering, ranking and top-N (Dalvi et al.); absent:
    /// per-layer probes only.
    #[serde(default)]
    pub selection: SelectionSpec,
    /// Also train the oracle and the final selection on a control task
    /// (Hewitt & Liang: a random label per word type) and report
    /// selectivity = task - control. Word-level tasks only.
    #[serde(default)]
    pub control_task: bool,
    /// Classifiers of the user's choice (logistic regression, linear SVM,
    /// random forest, kNN) trained on the selected features after the
    /// selection (on all features when there is no selection).
    #[serde(default)]
    pub downstream: Option<crate::downstream::DownstreamSpec>,
}

fn default_seed() -> u64 {
    42
}

/// The most threads a spec may ask for: [`MIN_THREAD_LIMIT`], or four per
/// core of this machine on one with more than 256 cores. Beyond a few
/// threads per core a run only gets slower (every probe and the backend
/// split their work into one share per thread) and each thread reserves its
/// own stack, so a larger count is a typo (`threads: 100000`), not a
/// setting. The fixed floor keeps a spec written for a big node valid when
/// it is checked on a laptop.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    MIN_THREAD_LIMIT.max(cores.saturating_mul(4))
}

/// See [`max_threads`].
pub const MIN_THREAD_LIMIT: usize = 1024;

/// `threads:` as written, refused while parsing when it is 0 or above
/// [`max_threads`]; a serde error here carries the spec's line and column.
fn threads_in_range<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let threads = Option::<usize>::deserialize(deserializer)?;
    match threads {
        Some(0) => Err(serde::de::Error::custom(
            "field `threads`: must be at least 1 (or left out for all cores)",
        )),
        Some(n) if n > max_threads() => Err(serde::de::Error::custom(format!(
            "field `threads`: {n} is more than {}, the most Sieve accepts (1024, or 4 per core \
             on machines with more than 256 cores; this one has {}): more threads than that only \
             slow a run down and each one reserves its own stack. Leave `threads` out to use \
             every core",
            max_threads(),
            std::thread::available_parallelism().map_or(1, usize::from),
        ))),
        _ => Ok(threads),
    }
}

/// The encoder: which backend plugin runs which model.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name of a backend plugin (`sieve plugins` lists them), e.g. `candle`.
    pub backend: Spanned<String>,
    /// The model: a Hugging Face folder (or a file, for backends that take
    /// one). Passed to the plugin as its `model` parameter.
    pub path: Spanned<PathBuf>,
    /// Sequences per forward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Further backend-specific parameters, passed through as they are.
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_batch_size() -> u32 {
    32
}

/// What the probe predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskSpec {
    /// One label per word (POS, NER, chunking).
    Tagging,
    /// One label per sentence or sentence pair.
    Classification,
    /// One real value per sentence or sentence pair.
    Regression,
}

/// Labelled data and how it becomes rows.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub task: TaskSpec,
    /// How the files are read (`format: word-tag`, `conllu`, `conll`,
    /// `parallel`, `tsv`, with that format's options).
    pub reader: DataFormat,
    /// Three files, one per split...
    #[serde(default)]
    pub train: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub dev: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub test: Option<Spanned<PathBuf>>,
    /// ...or one file and a split by unit position.
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub split: Option<UnitSplit>,
    /// Which subword of a word gives its row (NeuroX default: last).
    #[serde(default = "default_subword_pooling")]
    pub subword_pooling: SubwordPoolingSpec,
    /// How a sentence becomes one row.
    #[serde(default = "default_sentence_pooling")]
    pub sentence_pooling: SentencePoolingSpec,
}

fn default_subword_pooling() -> SubwordPoolingSpec {
    SubwordPoolingSpec::Last
}

fn default_sentence_pooling() -> SentencePoolingSpec {
    SentencePoolingSpec::Cls
}

/// A split of one file by unit (sentence) position: 1-based, inclusive
/// ranges, as `[first, last]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSplit {
    pub train: [usize; 2],
    pub dev: [usize; 2],
    pub test: [usize; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubwordPoolingSpec {
    First,
    Last,
    Average,
}

impl From<SubwordPoolingSpec> for SubwordPooling {
    fn from(value: SubwordPoolingSpec) -> Self {
        match value {
            SubwordPoolingSpec::First => SubwordPooling::First,
            SubwordPoolingSpec::Last => SubwordPooling::Last,
            SubwordPoolingSpec::Average => SubwordPooling::Average,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentencePoolingSpec {
    Cls,
    Mean,
}

impl From<SentencePoolingSpec> for SentencePooling {
    fn from(value: SentencePoolingSpec) -> Self {
        match value {
            SentencePoolingSpec::Cls => SentencePooling::Cls,
            SentencePoolingSpec::Mean => SentencePooling::Mean,
        }
    }
}

/// Where extracted activations are kept.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// Cache folder; defaults to `activations/` inside the output folder.
    /// Point several specs at one folder to share extractions.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `false` forces a fresh extraction even when a matching one exists.
    #[serde(default = "default_true")]
    pub reuse: bool,
    /// `f32` (default) or `f16`: halves disk and the memory of every
    /// gathered column subset's source pages; values differ from f32 by
    /// f16 rounding, so it is part of the extraction's identity.
    #[serde(default)]
    pub dtype: crate::store::StorageDtype,
    /// Rows per chunk file: what extraction holds in memory at once, and
    /// the unit of resuming and sharding.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
    /// Largest activation matrix (a column subset of one split, as f32)
    /// held in memory, in MiB. Probes on larger ones read the store a block
    /// of rows at a time; selector plugins get an evenly spread row sample
    /// of this size.
    /// Absent: derived from the memory available when the run starts (at
    /// most 2048; see `pipeline::resources`), and said so in the log.
    #[serde(default)]
    pub in_memory_mb: Option<usize>,
}

fn default_chunk_rows() -> usize {
    16_384
}

fn default_true() -> bool {
    true
}

// Not derived: a spec without a `store` section must reuse extractions.
impl Default for StoreSpec {
    fn default() -> Self {
        Self {
            dir: None,
            reuse: true,
            dtype: crate::store::StorageDtype::F32,
            chunk_rows: default_chunk_rows(),
            in_memory_mb: None,
        }
    }
}

impl ExperimentSpec {
    /// Checks the constraints between fields that serde cannot express.
    pub fn check_values(&self) -> Result<(), String> {
        self.data.check_values()?;
        if self.control_task && self.data.task != TaskSpec::Tagging {
            return Err(
                "field `control_task`: control tasks assign labels to word types, so they need \
                 `data.task: tagging`; remove the field for sentence tasks"
                    .into(),
            );
        }
        if let Some(downstream) = &self.downstream {
            if self.data.task == TaskSpec::Regression {
                return Err(
                    "section `downstream`: the downstream classifiers need class labels; \
                     remove the section for regression tasks"
                        .into(),
                );
            }
            downstream.check_values()?;
        }
        // Parsing refuses these with a line number; this covers specs built
        // in code.
        if let Some(threads) = self.threads {
            if threads == 0 || threads > max_threads() {
                return Err(format!(
                    "field `threads`: {threads} is not between 1 and {}",
                    max_threads()
                ));
            }
        }
        // The probe's own checks, before any extraction rather than at the
        // first probe (which can come after hours of extraction).
        self.probe
            .validate()
            .map_err(|e| format!("section `probe`: {e}"))?;
        if self.model.batch_size == 0 {
            return Err("field `model.batch_size`: must be at least 1".into());
        }
        if self.store.in_memory_mb.is_some_and(|mb| mb < 16) {
            return Err(
                "field `store.in_memory_mb`: must be at least 16 (MiB; default 2048)".into(),
            );
        }
        if self.store.chunk_rows == 0 {
            return Err("field `store.chunk_rows`: must be at least 1 (default 16384)".into());
        }
        self.selection.check_values()
    }
}

impl DataSpec {
    fn check_values(&self) -> Result<(), String> {
        let per_split = [&self.train, &self.dev, &self.test];
        let given = per_split.iter().filter(|f| f.is_some()).count();
        match (given, &self.file, &self.split) {
            (3, None, None) => Ok(()),
            (0, Some(_), Some(split)) => split.check(),
            (0, Some(_), None) => Err(
                "field `data.split`: `data.file` needs a split, e.g. `split: {train: [1, 800], dev: [801, 900], test: [901, 1001]}`"
                    .into(),
            ),
            (0, None, _) => Err(
                "section `data`: no data files; give `train`, `dev` and `test`, or `file` with a `split`"
                    .into(),
            ),
            (3, Some(_), _) => Err(
                "section `data`: give either `train`/`dev`/`test` or `file` with `split`, not both"
                    .into(),
            ),
            _ => Err("section `data`: `train`, `dev` and `test` must all be given".into()),
        }
    }

    /// True when rows are words (one label per word).
    pub fn is_word_level(&self) -> bool {
        self.task == TaskSpec::Tagging
    }
}

impl UnitSplit {
    fn check(&self) -> Result<(), String> {
        for (name, [first, last]) in [
            ("train", self.train),
            ("dev", self.dev),
            ("test", self.test),
        ] {
            if first == 0 || last < first {
                return Err(format!(
                    "field `data.split.{name}`: [{first}, {last}] is not a range of 1-based unit positions (first >= 1, last >= first)"
                ));
            }
        }
        Ok(())
    }
}

/// The paper's selection procedure (`selection:` in a spec). Each stage is
/// optional: leave one out to skip it.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSpec {
    #[serde(default)]
    pub layer_selector: Option<LayerSelectorSpec>,
    #[serde(default)]
    pub clustering: Option<SelectorStageSpec>,
    #[serde(default)]
    pub ranking: Option<SelectorStageSpec>,
    #[serde(default, deserialize_with = "top_n_checked")]
    pub top_n: Option<TopNSpec>,
    /// More rankers to compare with `ranking` on the same columns: each is
    /// scored at every size of the top-N grid and drawn on one chart.
    #[serde(default)]
    pub compare: Vec<SelectorStageSpec>,
}

/// LayerSelector: the fewest layers 0..k within `delta` % of the oracle.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSelectorSpec {
    /// Allowed relative drop from the oracle's dev score, in percent.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Train the cumulative probes 0..=k only up to the choice (the oracle
    /// first, then k = 0, 1, ...): the same choice for fewer probes; the
    /// report then has no score for the larger k.
    #[serde(default)]
    pub early_stop: bool,
    /// Also train each hidden state's probe alone (reported and plotted,
    /// not used by the selection).
    #[serde(default = "default_true")]
    pub single_layers: bool,
}

/// A selector plugin and its parameters.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorStageSpec {
    /// Name of a selector plugin (`sieve plugins` lists them).
    pub selector: Spanned<String>,
    /// Passed to the plugin as they are (see the plugin's documentation).
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Picking N from a ranking.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopNSpec {
    /// Allowed relative drop from the clustered probe's dev score, percent
    /// (1 when absent: [`TopNSpec::delta`]). An `Option` so that a spec
    /// giving it together with `target`, which ignores it, is refused.
    /// Serialised as the value in force, so a spec that writes the default
    /// and one that leaves it out share their cache keys.
    #[serde(default, serialize_with = "serialize_delta_in_force")]
    pub delta: Option<f64>,
    /// Candidate fractions of ALL the model's features (the paper's grid
    /// when absent).
    #[serde(default)]
    pub fractions: Option<Vec<f64>>,
    /// Explicit candidate counts instead of fractions.
    #[serde(default)]
    pub sizes: Option<Vec<usize>>,
    /// Keep exactly this many top-ranked neurons (no threshold search).
    #[serde(default)]
    pub target: Option<usize>,
}

fn default_delta() -> f64 {
    1.0
}

fn serialize_delta_in_force<S: serde::Serializer>(
    delta: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(delta.unwrap_or_else(default_delta))
}

impl TopNSpec {
    /// The delta rule's allowed drop in percent: the spec's, or 1%.
    pub fn delta(&self) -> f64 {
        self.delta.unwrap_or_else(default_delta)
    }

    /// Settings the search would silently ignore.
    fn check_combination(&self) -> Result<(), String> {
        if let (Some(delta), Some(target)) = (self.delta, self.target) {
            return Err(format!(
                "section `selection.top_n`: `delta: {delta}` and `target: {target}` are both given, \
                 but a fixed `target` keeps exactly that many neurons and never looks at `delta`; \
                 remove `delta` to keep {target} neurons, or remove `target` to search for the \
                 smallest N within {delta}% of the reference"
            ));
        }
        Ok(())
    }
}

/// `selection.top_n` as written, refused while parsing when it combines
/// settings that exclude each other, so the error carries the spec's line.
fn top_n_checked<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TopNSpec>, D::Error> {
    let top_n = Option::<TopNSpec>::deserialize(deserializer)?;
    if let Some(top_n) = &top_n {
        top_n
            .check_combination()
            .map_err(serde::de::Error::custom)?;
    }
    Ok(top_n)
}

impl SelectionSpec {
    fn check_values(&self) -> Result<(), String> {
        if let Some(ls) = &self.layer_selector {
            check_delta("selection.layer_selector.delta", ls.delta)?;
        }
        let Some(top_n) = &self.top_n else {
            return Ok(());
        };
        if self.ranking.is_none() {
            return Err(
                "section `selection.top_n`: needs a `selection.ranking` to pick from".into(),
            );
        }
        check_delta("selection.top_n.delta", top_n.delta())?;
        top_n.check_combination()?;
        let given = [
            top_n.fractions.is_some(),
            top_n.sizes.is_some(),
            top_n.target.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(
                "section `selection.top_n`: give at most one of `fractions`, `sizes`, `target`"
                    .into(),
            );
        }
        if let Some(bad) = top_n
            .fractions
            .iter()
            .flatten()
            .find(|f| !(**f > 0.0 && **f <= 1.0))
        {
            return Err(format!(
                "field `selection.top_n.fractions`: {bad} is not in (0, 1]"
            ));
        }
        if top_n.sizes.iter().flatten().any(|s| *s == 0) || top_n.target == Some(0) {
            return Err("section `selection.top_n`: sizes must be at least 1".into());
        }
        Ok(())
    }
}

fn check_delta(field: &str, delta: f64) -> Result<(), String> {
    if (0.0..100.0).contains(&delta) {
        Ok(())
    } else {
        Err(format!(
            "field `{field}`: {delta} is not a percentage in [0, 100)"
        ))
    }
}
