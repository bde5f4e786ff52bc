//! `sieve bench --slim MODEL_DIR`: an exported slim model against the full
//! model it was cut from plus the run's oracle probe, labelling the same
//! sentences.
//!
//! Both models go through the same code (`predict`: tokenise, encode,
//! gather the probe's inputs, classify), so the ratio of their throughputs
//! is the saving a user of `sieve predict` sees:
//! - slim: the truncated encoder (hidden states 0..=L), the selected
//!   neurons and their classifier;
//! - full: every layer (hidden states 0..=K), every feature and the oracle
//!   probe the run trained on all of them.
//!
//! After a warm-up on one copy of the input, each pass labels `copies`
//! copies of it with one model, then with the other (interleaved, so both
//! see the same machine load); the fastest of `repeat` passes is reported.
//! With the run's test split as input (the default) the warm-up also gives
//! both models' accuracy: it must equal the run's selection and oracle
//! test scores.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::pipeline::corpora::read_splits;
use crate::slim::export::run_spec;
use crate::slim::{SlimModel, SlimTask};
use crate::util::atomic::write_atomic;

/// Words per pass the default number of copies reaches: a few seconds of
/// work for the full model on a small CPU, so the fixed costs of a call
/// do not dominate.
const DEFAULT_WORDS_PER_PASS: usize = 10_000;

/// The command line of `sieve bench --slim`.
#[derive(Debug, Clone)]
pub struct SlimBenchOptions {
    pub model_dir: PathBuf,
    pub input: Option<PathBuf>,
    pub copies: Option<usize>,
    pub repeat: usize,
    pub full_model: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

/// One model's measurement.
#[derive(Debug, Serialize)]
struct ModelTiming {
    /// Hidden states 0..=last_layer are computed.
    last_layer: u32,
    /// Classifier inputs.
    features: usize,
    /// Fastest pass.
    seconds: f64,
    sentences_per_second: f64,
    words_per_second: f64,
    /// Accuracy on the gold labels (the run's test split as input only).
    accuracy: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SlimBenchReport {
    backend: String,
    model_name: String,
    /// Where the sentences came from.
    input: String,
    /// Sentences and words per pass (all copies).
    sentences: usize,
    words: usize,
    copies: usize,
    passes: usize,
    threads: usize,
    slim: ModelTiming,
    full: ModelTiming,
    /// Slim throughput over full throughput.
    speedup: f64,
    /// K / L: the saving if the encoder layers were all the cost (`None`
    /// for L = 0).
    layer_ratio: Option<f64>,
}

/// Sentences to label and, for the run's test split, their gold labels.
struct BenchInput {
    lines: Vec<String>,
    gold: Option<Vec<Vec<u32>>>,
    description: String,
}

pub fn bench_slim(options: &SlimBenchOptions) -> Result<()> {
    super::logging::init_stderr();
    let dir = &options.model_dir;
    let slim = SlimModel::open(dir, options.plugins.as_deref())?;
    let full = slim.open_full(dir, options.full_model.as_deref())?;
    let manifest = &slim.manifest;
    let input = match &options.input {
        Some(path) => BenchInput {
            lines: super::predict::read_lines(Some(path))?
                .into_iter()
                .filter(|l| !l.trim().is_empty())
                .collect(),
            gold: None,
            description: path.display().to_string(),
        },
        None => test_split(&slim)?,
    };
    if input.lines.is_empty() {
        bail!("{}: no sentences to label", input.description);
    }
    let words_once: usize = input
        .lines
        .iter()
        .map(|l| l.split_whitespace().count())
        .sum();
    let copies = options
        .copies
        .unwrap_or_else(|| DEFAULT_WORDS_PER_PASS.div_ceil(words_once.max(1)))
        .max(1);
    let lines: Vec<String> = (0..copies).flat_map(|_| input.lines.clone()).collect();
    let (sentences, words) = (lines.len(), words_once * copies);
    let threads = rayon::current_num_threads();
    println!(
        "slim model against the full model + oracle probe: backend '{}', model '{}', {threads} threads",
        manifest.backend, manifest.model_name
    );
    println!(
        "input: {} ({} sentences, {words_once} words) x {copies} copies = {sentences} sentences, {words} words per pass; fastest of {} passes",
        input.description,
        input.lines.len(),
        options.repeat
    );
    // Warm-up (first touch of the weights, allocator pools, ONNX Runtime's
    // session setup) on one copy of the input, batched exactly as the run
    // batched its test split: the accuracies then equal the run's scores.
    let mut accuracy = [None, None];
    for (which, slot) in accuracy.iter_mut().enumerate() {
        let labels = if which == 0 {
            slim.predict(&input.lines)?
        } else {
            full.predict(&input.lines)?
        };
        *slot = input.gold.as_ref().map(|gold| word_accuracy(&labels, gold));
    }
    let mut best = [f64::INFINITY; 2];
    for _ in 0..options.repeat {
        for (which, seconds) in best.iter_mut().enumerate() {
            let start = Instant::now();
            if which == 0 {
                slim.predict(&lines)?;
            } else {
                full.predict(&lines)?;
            }
            *seconds = seconds.min(start.elapsed().as_secs_f64());
        }
    }
    let timing = |which: usize, last_layer: u32, features: usize| {
        let seconds = best[which].max(1e-9);
        ModelTiming {
            last_layer,
            features,
            seconds,
            sentences_per_second: sentences as f64 / seconds,
            words_per_second: words as f64 / seconds,
            accuracy: accuracy[which],
        }
    };
    let report = SlimBenchReport {
        backend: manifest.backend.clone(),
        model_name: manifest.model_name.clone(),
        input: input.description.clone(),
        sentences,
        words,
        copies,
        passes: options.repeat,
        threads,
        slim: timing(0, manifest.last_layer, manifest.neurons.len()),
        full: timing(1, full.layers, full.features),
        speedup: best[1] / best[0].max(1e-9),
        layer_ratio: (manifest.last_layer > 0)
            .then(|| full.layers as f64 / manifest.last_layer as f64),
    };
    print_report(&report);
    if let Some(path) = &options.json {
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}

/// The test split of the run the slim model was exported from, read with
/// the run's own reader, with its gold labels as class indices.
fn test_split(slim: &SlimModel) -> Result<BenchInput> {
    let manifest = &slim.manifest;
    let source = manifest
        .source
        .as_ref()
        .context("the slim model does not name the run it was exported from; pass --input FILE")?;
    let run_dir = Path::new(&source.run_dir);
    let mut loaded =
        run_spec(run_dir, None).context("cannot read the run's spec; pass --input FILE instead")?;
    if let Some(dir) = &source.spec_dir {
        loaded.base_dir = PathBuf::from(dir);
    }
    let splits = read_splits(&loaded).with_context(|| {
        format!(
            "cannot read the data of the run in {}; pass --input FILE instead",
            run_dir.display()
        )
    })?;
    let class = |name: &str| -> u32 {
        // A gold label the classifier does not know counts as an error.
        manifest
            .classes
            .iter()
            .position(|c| c == name)
            .map_or(u32::MAX, |i| i as u32)
    };
    let mut lines = Vec::new();
    let mut gold = Vec::new();
    for unit in &splits.splits[2] {
        if unit.pair.is_some() {
            bail!(
                "the run's data are sentence pairs, which `sieve predict` does not take; pass --input FILE"
            );
        }
        let line = match manifest.task {
            SlimTask::Tagging => unit.words.join(" "),
            SlimTask::Classification => unit.text.clone(),
        };
        // Predict splits on whitespace: a word that holds some would not
        // line up with its gold label.
        let aligned = match manifest.task {
            SlimTask::Tagging => line.split_whitespace().count() == unit.labels.len(),
            SlimTask::Classification => !line.trim().is_empty(),
        };
        if !aligned {
            bail!(
                "line {} of the run's test data does not split into its labelled words at whitespace; pass --input FILE",
                unit.line
            );
        }
        lines.push(line);
        gold.push(unit.labels.iter().map(|l| class(l)).collect());
    }
    Ok(BenchInput {
        lines,
        gold: Some(gold),
        description: format!("the test split of the run in {}", run_dir.display()),
    })
}

/// Share of gold labels predicted (words for tagging, lines otherwise).
fn word_accuracy(predicted: &[Vec<u32>], gold: &[Vec<u32>]) -> f64 {
    let (mut correct, mut total) = (0usize, 0usize);
    for (p, g) in predicted.iter().zip(gold) {
        correct += p.iter().zip(g).filter(|(a, b)| a == b).count();
        total += g.len();
    }
    correct as f64 / total.max(1) as f64
}

fn print_report(report: &SlimBenchReport) {
    println!(
        "| model | hidden states | classifier inputs | seconds | sentences/s | words/s | accuracy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, m) in [("slim", &report.slim), ("full + oracle", &report.full)] {
        let accuracy = m
            .accuracy
            .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
        println!(
            "| {name} | 0..={} | {} | {:.2} | {:.1} | {:.0} | {accuracy} |",
            m.last_layer, m.features, m.seconds, m.sentences_per_second, m.words_per_second
        );
    }
    let expected = match report.layer_ratio {
        Some(ratio) => format!(
            "{} / L = {ratio:.2}x for L = {}",
            report.full.last_layer, report.slim.last_layer
        ),
        None => "L = 0: only the embeddings run".to_string(),
    };
    println!(
        "slim throughput / full throughput: {:.2}x ({expected})",
        report.speedup
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_words_and_unknown_gold_labels_as_errors() {
        let predicted = vec![vec![0, 1, 2], vec![3]];
        let gold = vec![vec![0, 1, 1], vec![u32::MAX]];
        assert!((word_accuracy(&predicted, &gold) - 0.5).abs() < 1e-12);
    }
}
