//! The spec's data as three labelled splits, with one label vocabulary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::data::{read_corpus, Corpus, Unit};
use crate::spec::{LoadedSpec, TaskSpec};
use crate::store::SplitTargets;
use crate::util::hashing::fingerprint_file;

/// train, dev and test, each a list of units.
pub struct Splits {
    pub splits: [Vec<Unit>; 3],
    /// Files the data came from (for the cache key and the report).
    pub files: Vec<PathBuf>,
}

impl Splits {
    pub fn rows(&self, split: usize, word_level: bool) -> usize {
        let units = &self.splits[split];
        if word_level {
            units.iter().map(|u| u.words.len()).sum()
        } else {
            units.len()
        }
    }

    pub fn data_fingerprints(&self) -> Result<Vec<String>> {
        self.files.iter().map(|f| fingerprint_file(f)).collect()
    }
}

/// Reads the spec's files and applies its split.
pub fn read_splits(loaded: &LoadedSpec) -> Result<Splits> {
    let data = &loaded.spec.data;
    let mut reader = data.reader.clone();
    reader.resolve_paths(&loaded.base_dir);
    let read = |path: &PathBuf| -> Result<Corpus> {
        let resolved = loaded.resolve(path);
        Ok(read_corpus(&reader, &resolved)?)
    };
    let splits = if let (Some(file), Some(split)) = (&data.file, &data.split) {
        let corpus = read(&file.value)?;
        let path = corpus.path.clone();
        let take = |name: &str, [first, last]: [usize; 2]| -> Result<Vec<Unit>> {
            if last > corpus.units.len() {
                bail!(
                    "{}: field `data.split.{name}` asks for units {first}..{last}, but {} holds {} units",
                    loaded.path.display(),
                    path.display(),
                    corpus.units.len()
                );
            }
            Ok(corpus.units[first - 1..last].to_vec())
        };
        Splits {
            splits: [
                take("train", split.train)?,
                take("dev", split.dev)?,
                take("test", split.test)?,
            ],
            files: vec![path],
        }
    } else {
        let mut corpora = Vec::new();
        for field in [&data.train, &data.dev, &data.test] {
            let path = field
                .as_ref()
                .context("internal error: split file missing after checks")?;
            corpora.push(read(&path.value)?);
        }
        let files = corpora.iter().map(|c| c.path.clone()).collect();
        let [train, dev, test]: [Corpus; 3] = corpora
            .try_into()
            .map_err(|_| anyhow::anyhow!("internal error: three corpora expected"))?;
        Splits {
            splits: [train.units, dev.units, test.units],
            files,
        }
    };
    check_not_empty(loaded, &splits)?;
    Ok(splits)
}

fn check_not_empty(loaded: &LoadedSpec, splits: &Splits) -> Result<()> {
    for (name, units) in ["train", "dev", "test"].iter().zip(&splits.splits) {
        if units.is_empty() {
            bail!(
                "{}: the {name} split is empty; check `data` in the spec",
                loaded.path.display()
            );
        }
    }
    Ok(())
}

/// Label names (classification) and each split's targets.
pub struct EncodedTargets {
    /// Class names, sorted; empty for regression.
    pub classes: Vec<String>,
    /// Labels seen in dev/test but never in train (they count as errors).
    pub unseen: Vec<String>,
    pub splits: [SplitTargets; 3],
}

/// Maps label strings to class indices (from the train split; a dev/test
/// label unknown to train gets an index no probe can predict) or parses
/// them as numbers for regression.
pub fn encode_targets(task: TaskSpec, splits: &Splits) -> Result<EncodedTargets> {
    if task == TaskSpec::Regression {
        return encode_regression(splits);
    }
    let mut classes: Vec<String> = splits.splits[0]
        .iter()
        .flat_map(|u| u.labels.iter().cloned())
        .collect();
    classes.sort();
    classes.dedup();
    let index: BTreeMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let mut unseen = Vec::new();
    let unknown = classes.len() as u32;
    let encode = |units: &[Unit], unseen: &mut Vec<String>| -> SplitTargets {
        let labels = units
            .iter()
            .flat_map(|u| u.labels.iter())
            .map(|label| {
                index.get(label.as_str()).copied().unwrap_or_else(|| {
                    unseen.push(label.clone());
                    unknown
                })
            })
            .collect();
        SplitTargets::Labels(labels)
    };
    let train = encode(&splits.splits[0], &mut unseen);
    let dev = encode(&splits.splits[1], &mut unseen);
    let test = encode(&splits.splits[2], &mut unseen);
    unseen.sort();
    unseen.dedup();
    Ok(EncodedTargets {
        classes,
        unseen,
        splits: [train, dev, test],
    })
}

fn encode_regression(splits: &Splits) -> Result<EncodedTargets> {
    let parse = |units: &[Unit]| -> Result<SplitTargets> {
        let mut values = Vec::new();
        for unit in units {
            for label in &unit.labels {
                let value: f32 = label.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "line {}: regression target '{label}' is not a number",
                        unit.line
                    )
                })?;
                values.push(value);
            }
        }
        Ok(SplitTargets::Values(values))
    };
    Ok(EncodedTargets {
        classes: Vec::new(),
        unseen: Vec::new(),
        splits: [
            parse(&splits.splits[0])?,
            parse(&splits.splits[1])?,
            parse(&splits.splits[2])?,
        ],
    })
}
