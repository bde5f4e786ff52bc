//! Issue 16, item 6: `sieve validate` passed what `sieve run` rejected, and
//! `run` found a bad plugin parameter only after extraction and every probe.
//! Each test gives a spec that cannot run and checks that `validate` refuses
//! it, and where it matters that `run` refuses it before any extraction,
//! with the spec's (or the data file's) real line in the message.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use sieve_e2e::*;

/// Tiny word-tag data: the preflight must not depend on its size.
fn write_tagging_data(dir: &Path) {
    for (name, text) in [
        (
            "train.txt",
            "the/DT dog/NN barks/VBZ\na/DT cat/NN sleeps/VBZ\n",
        ),
        ("dev.txt", "the/DT cat/NN\n"),
        ("test.txt", "a/DT dog/NN\n"),
    ] {
        std::fs::write(dir.join(name), text).expect("write data");
    }
}

/// A tagging spec on the real MiniLM (or `model`) with `selection` appended.
fn tagging_spec(dir: &Path, model: &Path, selection: &str) -> PathBuf {
    write_tagging_data(dir);
    let text = format!(
        "output: {out}\n\
         model:\n  backend: candle\n  path: {model}\n\
         data:\n  task: tagging\n  reader: {{format: word-tag}}\n  \
         train: {d}/train.txt\n  dev: {d}/dev.txt\n  test: {d}/test.txt\n\
         {selection}",
        out = dir.join("run").display(),
        model = model.display(),
        d = dir.display(),
    );
    write_spec(dir, "spec.yaml", &text)
}

/// The 1-based line of the first line of `spec` that contains `needle`.
fn line_of(spec: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(spec).expect("read spec");
    let index = text
        .lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("'{needle}' is not in the spec:\n{text}"));
    index + 1
}

fn assert_refused(output: &Output, needles: &[&str]) {
    let all = text(output);
    assert_eq!(output.status.code(), Some(1), "expected a refusal:\n{all}");
    for needle in needles {
        assert!(all.contains(needle), "message lacks '{needle}':\n{all}");
    }
    // The old message pointed into the JSON the host generated.
    assert!(!all.contains("line 1 column"), "{all}");
}

fn validate(spec: &Path) -> Output {
    sieve(&["validate", spec.to_str().expect("utf-8 path")], &[])
}

/// `sieve run`, with how long it took to fail.
fn run(spec: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let output = sieve(&["run", spec.to_str().expect("utf-8 path")], &[]);
    (output, started.elapsed())
}

/// A run refused before any extraction: quickly, and with no activations.
fn assert_refused_before_extraction(dir: &Path, output: &Output, took: Duration, needles: &[&str]) {
    assert_refused(output, needles);
    assert!(
        !dir.join("run/activations").exists(),
        "the run extracted before refusing:\n{}",
        text(output)
    );
    // The preflight itself takes well under a second (measured ~0.2 s);
    // the bound leaves room for a loaded test machine.
    assert!(
        took < Duration::from_secs(10),
        "refused only after {took:?}"
    );
}

#[test]
fn a_typo_in_a_selector_parameter_fails_validate_and_run_at_its_spec_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let selection =
        "selection:\n  ranking:\n    selector: elastic-net\n    params:\n      strid: 100\n";
    let spec = tagging_spec(dir.path(), &asset("all-MiniLM-L6-v2"), selection);
    let line = format!("line {}", line_of(&spec, "strid"));
    let needles = [
        line.as_str(),
        "selection.ranking.params.strid",
        "parameter `strid`: unknown",
        "`stride`",
    ];
    assert_refused(&validate(&spec), &needles);
    let (output, took) = run(&spec);
    assert_refused_before_extraction(dir.path(), &output, took, &needles);
}

#[test]
fn a_threshold_given_as_a_string_is_refused_at_its_spec_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let selection =
        "selection:\n  clustering:\n    selector: correlation\n    params: {threshold: \"0.3\"}\n";
    let spec = tagging_spec(dir.path(), &asset("all-MiniLM-L6-v2"), selection);
    let line = format!("line {}", line_of(&spec, "threshold"));
    let needles = [
        line.as_str(),
        "selection.clustering.params.threshold",
        "expected a number, got the string \"0.3\"",
    ];
    assert_refused(&validate(&spec), &needles);
    let (output, took) = run(&spec);
    assert_refused_before_extraction(dir.path(), &output, took, &needles);
}

/// A copy of MiniLM whose config.json has `key` changed to `value`; the
/// other files are links to the real ones (only config.json differs).
fn minilm_with_config(dir: &Path, key: &str, value: u64) -> PathBuf {
    let source = asset("all-MiniLM-L6-v2");
    let model = dir.join("model");
    std::fs::create_dir(&model).expect("model folder");
    for entry in std::fs::read_dir(&source).expect("read MiniLM") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_owned();
        if name != "config.json" {
            std::os::unix::fs::symlink(&path, model.join(&name)).expect("link model file");
        }
    }
    let text = std::fs::read_to_string(source.join("config.json")).expect("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&text).expect("config is JSON");
    config[key] = value.into();
    std::fs::write(model.join("config.json"), config.to_string()).expect("write config");
    model
}

#[test]
fn a_model_whose_config_disagrees_with_its_weights_fails_validate_and_run() {
    // More hidden units than the weights have: caught by the shapes.
    let dir = tempfile::tempdir().expect("temp dir");
    let model = minilm_with_config(dir.path(), "hidden_size", 768);
    let spec = tagging_spec(dir.path(), &model, "");
    let line = format!("line {}", line_of(&spec, "  path:"));
    let needles = [line.as_str(), "model.path", "config.json implies"];
    assert_refused(&validate(&spec), &needles);

    // Fewer layers than the weights hold: loading it would silently probe
    // a truncated model.
    let dir = tempfile::tempdir().expect("temp dir");
    let model = minilm_with_config(dir.path(), "num_hidden_layers", 5);
    let spec = tagging_spec(dir.path(), &model, "");
    let needles = [
        line.as_str(),
        "model.path",
        "num_hidden_layers: 5",
        "more layers",
    ];
    assert_refused(&validate(&spec), &needles);
    let (output, took) = run(&spec);
    assert_refused_before_extraction(dir.path(), &output, took, &needles);
}

#[test]
fn an_onnx_runtime_library_that_does_not_exist_fails_validate_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tagging_data(dir.path());
    let missing = dir.path().join("no-such/libonnxruntime.so");
    let text = format!(
        "output: {out}\n\
         model:\n  backend: onnx\n  path: {model}\n  params:\n    tokenizer: {tokenizer}\n    \
         runtime: {missing}\n\
         data:\n  task: tagging\n  reader: {{format: word-tag}}\n  \
         train: {d}/train.txt\n  dev: {d}/dev.txt\n  test: {d}/test.txt\n",
        out = dir.path().join("run").display(),
        model = asset("minilm-int8-onnx/model.onnx").display(),
        tokenizer = asset("all-MiniLM-L6-v2").display(),
        missing = missing.display(),
        d = dir.path().display(),
    );
    let spec = write_spec(dir.path(), "spec.yaml", &text);
    let line = format!("line {}", line_of(&spec, "runtime:"));
    let missing = missing.display().to_string();
    let needles = [
        line.as_str(),
        "model.params.runtime",
        "ONNX Runtime library",
        missing.as_str(),
    ];
    assert_refused(&validate(&spec), &needles);
}

/// A sentence-regression spec over `train`, `dev` and `test` TSV bodies.
fn regression_spec(dir: &Path, [train, dev, test]: [&str; 3]) -> PathBuf {
    for (name, body) in [("train.tsv", train), ("dev.tsv", dev), ("test.tsv", test)] {
        std::fs::write(dir.join(name), format!("text\tlabel\n{body}")).expect("write data");
    }
    let text = format!(
        "output: {out}\n\
         model:\n  backend: candle\n  path: {model}\n\
         data:\n  task: regression\n  reader: {{format: tsv}}\n  \
         train: {d}/train.tsv\n  dev: {d}/dev.tsv\n  test: {d}/test.tsv\n",
        out = dir.join("run").display(),
        model = asset("all-MiniLM-L6-v2").display(),
        d = dir.display(),
    );
    write_spec(dir, "spec.yaml", &text)
}

#[test]
fn regression_targets_that_are_not_finite_numbers_fail_with_file_and_line() {
    let good = "a good film\t4.5\na bad film\t1.0\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = regression_spec(
        dir.path(),
        ["a fine film\t3.0\nan odd film\tgreat\n", good, good],
    );
    let at = format!("{}:3", dir.path().join("train.tsv").display());
    assert_refused(&validate(&spec), &[at.as_str(), "'great'", "not a number"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = regression_spec(dir.path(), [good, "a film\tNaN\n", good]);
    let at = format!("{}:2", dir.path().join("dev.tsv").display());
    assert_refused(
        &validate(&spec),
        &[at.as_str(), "'NaN'", "not a finite number"],
    );
    let (output, took) = run(&spec);
    assert_refused_before_extraction(dir.path(), &output, took, &[at.as_str(), "'NaN'"]);
}

#[test]
fn a_plugin_built_for_the_previous_interface_is_refused() {
    let fixtures = fixture_plugin_dir();
    let plugins = plugin_dir_with(&[fixtures.join(library_name("sieve-fixture-old-interface"))]);
    let output = sieve(&["plugins"], &[("SIEVE_PLUGIN_DIR", plugins.path())]);
    let all = text(&output);
    assert!(all.contains("from-the-past"), "{all}");
    assert!(
        all.contains("interface version 1, this sieve implements version 2"),
        "{all}"
    );
}
