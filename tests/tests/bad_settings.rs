//! Issue 16, item 7: settings that used to be accepted without a word are
//! refused with a message naming the field (and line), or handled and
//! reported truthfully. Each test drives the real binary.

use std::path::Path;

use sieve_e2e::*;

/// A word-tag tagging spec on the real MiniLM over three tiny files in
/// `dir`, with `extra` appended (top-level sections).
fn tiny_spec(dir: &Path, extra: &str) -> String {
    format!(
        "output: {out}\nstore: {{dir: {store}}}\nmodel:\n  backend: candle\n  path: {model}\ndata:\n  task: tagging\n  \
         reader: {{format: word-tag}}\n  train: {d}/train.txt\n  dev: {d}/dev.txt\n  test: {d}/test.txt\n{extra}",
        out = dir.join("run").display(),
        store = dir.join("activations").display(),
        model = asset("all-MiniLM-L6-v2").display(),
        d = dir.display(),
    )
}

fn assert_fails_with(output: &std::process::Output, needles: &[&str]) {
    let all = text(output);
    assert_eq!(output.status.code(), Some(1), "exit status 1:\n{all}");
    for needle in needles {
        assert!(all.contains(needle), "message lacks '{needle}':\n{all}");
    }
}

#[test]
fn training_data_with_a_single_class_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/NN dog/NN\na/NN cat/NN\n");
    let spec = write_spec(dir.path(), "spec.yaml", &tiny_spec(dir.path(), ""));
    for command in ["validate", "run"] {
        let output = sieve(&[command, spec.to_str().unwrap()], &[]);
        assert_fails_with(
            &output,
            &[
                "train.txt",
                "every training label is 'NN'",
                "at least two classes",
            ],
        );
    }
    assert!(
        !dir.path().join("activations").exists(),
        "refused before any extraction"
    );
}

#[test]
fn two_plugin_files_with_one_name_are_refused_naming_both() {
    let candle = candle_library();
    let plugins = plugin_dir_with(std::slice::from_ref(&candle));
    let copy = plugins
        .path()
        .join(library_name("sieve-backend-candle-old-copy"));
    std::fs::copy(&candle, &copy).unwrap();

    let listing = sieve(&["plugins"], &[("SIEVE_PLUGIN_DIR", plugins.path())]);
    let listed = text(&listing);
    assert!(listing.status.success(), "{listed}");
    assert!(
        listed.contains("rejected") && listed.contains("remove all but one"),
        "{listed}"
    );
    assert!(
        listed.contains(&copy.display().to_string()),
        "names the copy: {listed}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let text = tiny_spec(
        dir.path(),
        &format!("plugins: {}\n", plugins.path().display()),
    );
    let spec = write_spec(dir.path(), "spec.yaml", &text);
    let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
    assert_fails_with(
        &output,
        &[
            "backend plugin 'candle'",
            &copy.display().to_string(),
            &plugins
                .path()
                .join(library_name("sieve-backend-candle"))
                .display()
                .to_string(),
            "remove all but one",
        ],
    );
}

#[test]
fn a_target_above_the_available_neurons_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(
        dir.path(),
        "the/DT dog/NN barks/VBZ\na/DT cat/NN sleeps/VBZ\n",
    );
    let selection = "probe: {epochs: 1}\nselection:\n  ranking: {selector: random}\n  top_n: {target: 999999}\n";
    let spec = write_spec(dir.path(), "spec.yaml", &tiny_spec(dir.path(), selection));
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    // MiniLM: 7 hidden states x 384 neurons, all of them ranked.
    let available = 7 * 384;
    assert!(
        all.contains("999999") && all.contains(&format!("keeps all {available}")),
        "the log says so: {all}"
    );
    let report = read_report(&dir.path().join("run"));
    // `budget_features` in the structured report (`target` before it).
    let selection = &report["selection"];
    let budget = ["budget_features", "target"]
        .iter()
        .map(|key| &selection[key])
        .find(|value| !value.is_null());
    assert_eq!(
        budget,
        Some(&available.into()),
        "the budget used: {selection}"
    );
    assert_eq!(report["selection"]["features"], available);
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("999999"), "a warning: {warnings}");
    let markdown = std::fs::read_to_string(dir.path().join("run/report.md")).unwrap();
    assert!(
        markdown.contains(&format!("budget {available}")) && !markdown.contains("budget 999999"),
        "{markdown}"
    );
}

#[test]
fn out_of_range_spec_settings_are_refused_with_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    // The spec's lines 1-11 are fixed; the setting is on line 12 (or 14).
    for (extra, needles) in [
        (
            "threads: 100000\n",
            &["field `threads`", "100000", "line 12"][..],
        ),
        (
            "probe: {epochs: 0}\n",
            &["probe.epochs", "at least 1", "line 12"],
        ),
        (
            "selection:\n  ranking: {selector: random}\n  top_n: {delta: 2, target: 50}\n",
            &["selection.top_n", "`target: 50`", "line 14"],
        ),
    ] {
        let spec = write_spec(dir.path(), "spec.yaml", &tiny_spec(dir.path(), extra));
        let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
        assert_fails_with(&output, needles);
    }
}

#[test]
fn a_clustering_threshold_outside_0_to_2_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let selection = "selection:\n  clustering: {selector: correlation, params: {threshold: 7}}\n";
    let spec = write_spec(dir.path(), "spec.yaml", &tiny_spec(dir.path(), selection));
    for command in ["validate", "run"] {
        let output = sieve(&[command, spec.to_str().unwrap()], &[]);
        assert_fails_with(&output, &["line 13", "threshold", "[0, 2]", "got 7"]);
    }
    assert!(
        !dir.path().join("activations").exists(),
        "refused before any extraction"
    );
}
