//! The spec's data as three labelled splits, with one label vocabulary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::data::{read_corpus, Corpus, Unit};
use crate::spec::{LoadedSpec, TaskSpec};
use crate::store::SplitTargets;

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
    if data.task != TaskSpec::Regression {
        check_two_classes(loaded, &splits)?;
    }
    Ok(splits)
}

/// A classifier trained on one class predicts it everywhere: the run would
/// report its frequency as an accuracy. This is always a wrong file, a
/// wrong label column or a wrong split, so it stops the run before any
/// extraction.
fn check_two_classes(loaded: &LoadedSpec, splits: &Splits) -> Result<()> {
    let mut labels = splits.splits[0].iter().flat_map(|u| u.labels.iter());
    let Some(first) = labels.next() else {
        return Ok(()); // No rows: the readers and check_not_empty refuse that.
    };
    if labels.any(|label| label != first) {
        return Ok(());
    }
    let data = &loaded.spec.data;
    let source = match (&data.file, &data.split) {
        (Some(file), Some(split)) => format!(
            "{} (units {}..{}, `data.split.train`)",
            loaded.resolve(&file.value).display(),
            split.train[0],
            split.train[1]
        ),
        _ => splits
            .files
            .first()
            .map_or_else(|| "the training data".into(), |f| f.display().to_string()),
    };
    bail!(
        "{source}: every training label is '{first}', but a {} probe needs at least two classes \
         to learn anything. Check that `data.train` (or `data.split.train`) names the training \
         file and that the reader's options pick the label column (`reader:` in {})",
        task_name(data.task),
        loaded.path.display()
    )
}

fn task_name(task: TaskSpec) -> &'static str {
    match task {
        TaskSpec::Tagging => "tagging",
        TaskSpec::Classification => "classification",
        TaskSpec::Regression => "regression",
    }
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
    // One file per split, or one file for all three (`data.file` + `split`).
    let parse = |split: usize| -> Result<SplitTargets> {
        let file = splits.files.get(split).or(splits.files.first());
        let file = file.map_or_else(|| "the data".into(), |f| f.display().to_string());
        let mut values = Vec::new();
        for unit in &splits.splits[split] {
            for label in &unit.labels {
                values.push(regression_target(label).map_err(|problem| {
                    anyhow::anyhow!(
                        "{file}:{}: regression target '{label}' {problem}",
                        unit.line
                    )
                })?);
            }
        }
        Ok(SplitTargets::Values(values))
    };
    Ok(EncodedTargets {
        classes: Vec::new(),
        unseen: Vec::new(),
        splits: [parse(0)?, parse(1)?, parse(2)?],
    })
}

/// A regression target: a finite number (NaN and infinities, which parse
/// as numbers, would turn every probe's loss into NaN).
fn regression_target(label: &str) -> Result<f32, &'static str> {
    match label.trim().parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(
            "is not a finite number (NaN, infinite or beyond f32); give a real value \
                      or remove the line",
        ),
        Err(_) => Err(
            "is not a number; the label column of a regression task must hold \
                       numbers such as 3.5 (check the reader's label column)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tagging spec over three word-tag files in a temporary folder.
    fn spec_with_train(train: &str) -> (tempfile::TempDir, LoadedSpec) {
        let dir = tempfile::tempdir().expect("temporary folder");
        for (name, text) in [
            ("train.txt", train),
            ("dev.txt", "a/DT dog/NN\n"),
            ("test.txt", "the/DT cat/NN\n"),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write data");
        }
        let spec = "output: run\nmodel: {backend: candle, path: .}\ndata:\n  task: tagging\n  \
                    reader: {format: word-tag}\n  train: train.txt\n  dev: dev.txt\n  test: test.txt\n";
        let path = dir.path().join("spec.yaml");
        std::fs::write(&path, spec).expect("write spec");
        let loaded = crate::spec::load_spec(&path).expect("valid spec");
        (dir, loaded)
    }

    #[test]
    fn training_data_with_a_single_class_is_refused() {
        let (_dir, loaded) = spec_with_train("the/NN dog/NN\na/NN cat/NN\n");
        let message = read_splits(&loaded).err().expect("refused").to_string();
        assert!(message.contains("train.txt"), "{message}");
        assert!(message.contains("'NN'"), "{message}");
        assert!(message.contains("at least two classes"), "{message}");
        let (_dir, loaded) = spec_with_train("the/DT dog/NN\n");
        read_splits(&loaded).expect("two classes are enough");
    }
}
