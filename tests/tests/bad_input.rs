//! Every user-facing error of the foundation: triggered through the real
//! binary, with its message and exit status checked.

use std::path::Path;

use sieve_e2e::*;

/// A word-tag spec over `data` files in `dir` using backend `backend`.
fn tagging_spec(dir: &Path, backend: &str, extra: &str) -> String {
    format!(
        "output: {out}\nmodel:\n  backend: {backend}\n  path: {model}\ndata:\n  task: tagging\n  reader: {{format: word-tag}}\n  train: {d}/train.txt\n  dev: {d}/dev.txt\n  test: {d}/test.txt\n{extra}",
        out = dir.join("run").display(),
        model = dir.display(),
        d = dir.display(),
    )
}

fn assert_fails_with(output: &std::process::Output, needles: &[&str]) {
    let all = text(output);
    assert!(
        !output.status.success(),
        "expected failure, got success:\n{all}"
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "clean exit with status 1:\n{all}"
    );
    for needle in needles {
        assert!(all.contains(needle), "message lacks '{needle}':\n{all}");
    }
}

#[test]
fn misspelled_spec_field_reports_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let text = tagging_spec(dir.path(), "candle", "").replace("  task:", "  tsak:");
    let spec = write_spec(dir.path(), "spec.yaml", &text);
    let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
    assert_fails_with(&output, &["spec.yaml", "tsak", "line 6"]);
}

#[test]
fn wrong_type_in_spec_reports_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let text = tagging_spec(dir.path(), "candle", "probe:\n  epochs: ten\n");
    let spec = write_spec(dir.path(), "spec.yaml", &text);
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert_fails_with(&output, &["spec.yaml", "line 12", "epochs"]);
}

#[test]
fn missing_data_file_names_the_field_and_position() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    std::fs::remove_file(dir.path().join("dev.txt")).unwrap();
    let spec = write_spec(
        dir.path(),
        "spec.yaml",
        &tagging_spec(dir.path(), "candle", ""),
    );
    let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
    assert_fails_with(
        &output,
        &["data.dev", "line 9", "dev.txt", "does not exist"],
    );
}

#[test]
fn malformed_data_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\nthe/DT lonely\n");
    let spec = write_spec(
        dir.path(),
        "spec.yaml",
        &tagging_spec(dir.path(), "candle", ""),
    );
    let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
    assert_fails_with(&output, &["train.txt:2", "lonely"]);
}

#[test]
fn missing_backend_plugin_lists_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let spec = write_spec(
        dir.path(),
        "spec.yaml",
        &tagging_spec(dir.path(), "tensorflow", ""),
    );
    let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
    assert_fails_with(&output, &["no backend plugin named 'tensorflow'", "candle"]);
}

#[test]
fn a_file_that_is_not_a_plugin_is_rejected_by_name() {
    let plugins = plugin_dir_with(&[candle_library()]);
    std::fs::write(plugins.path().join("libimpostor.so"), b"not an ELF file").unwrap();
    let output = sieve(&["plugins"], &[("SIEVE_PLUGIN_DIR", plugins.path())]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("candle") && all.contains("backend"), "{all}");
    assert!(
        all.contains("libimpostor.so") && all.contains("not a loadable dynamic library"),
        "{all}"
    );
}

#[test]
fn a_library_without_a_sieve_module_is_not_a_plugin() {
    // A real shared library that is not a Sieve plugin: the C runtime's
    // libm is on every Linux machine; copy it under a plugin-like name.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists())
    .expect("libm exists on this Linux machine");
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(libm, plugins.path().join("libmaths.so")).unwrap();
    let output = sieve(&["plugins"], &[("SIEVE_PLUGIN_DIR", plugins.path())]);
    let all = text(&output);
    assert!(
        all.contains("libmaths.so") && all.contains("not a Sieve plugin"),
        "{all}"
    );
}

#[test]
fn a_plugin_of_another_interface_version_is_refused_with_both_versions() {
    let fixtures = fixture_plugin_dir();
    let plugins = plugin_dir_with(&[fixtures.join(library_name("sieve-fixture-wrong-interface"))]);
    let output = sieve(&["plugins"], &[("SIEVE_PLUGIN_DIR", plugins.path())]);
    let all = text(&output);
    assert!(all.contains("from-the-future"), "{all}");
    assert!(
        all.contains("interface version 99") && all.contains("version 2"),
        "{all}"
    );
}

#[test]
fn a_panicking_backend_is_reported_and_the_runner_exits_cleanly() {
    let fixtures = fixture_plugin_dir();
    let plugins =
        plugin_dir_with(&[fixtures.join(library_name("sieve-fixture-misbehaving-backend"))]);
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let spec = write_spec(
        dir.path(),
        "spec.yaml",
        &tagging_spec(dir.path(), "misbehaving", ""),
    );
    let output = sieve(
        &["run", spec.to_str().unwrap()],
        &[("SIEVE_PLUGIN_DIR", plugins.path())],
    );
    assert_fails_with(
        &output,
        &[
            "plugin 'misbehaving'",
            "failed in encode",
            "panicked",
            "deliberate panic",
        ],
    );
    // No report that looks complete is left behind.
    assert!(!dir.path().join("run/report.json").exists());
}

#[test]
fn a_failing_backend_open_is_reported_with_the_plugin_name() {
    let fixtures = fixture_plugin_dir();
    let plugins =
        plugin_dir_with(&[fixtures.join(library_name("sieve-fixture-misbehaving-backend"))]);
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let extra = "";
    let text = tagging_spec(dir.path(), "misbehaving", extra).replace(
        &format!("  path: {}\n", dir.path().display()),
        &format!(
            "  path: {}\n  params: {{fail_in: open-panic}}\n",
            dir.path().display()
        ),
    );
    let spec = write_spec(dir.path(), "spec.yaml", &text);
    let output = sieve(
        &["run", spec.to_str().unwrap()],
        &[("SIEVE_PLUGIN_DIR", plugins.path())],
    );
    assert_fails_with(
        &output,
        &[
            "plugin 'misbehaving'",
            "failed in open",
            "deliberate panic in open",
        ],
    );
}

#[test]
fn the_plugin_folder_from_the_spec_wins_over_the_environment() {
    let empty = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_tiny_word_tag_data(dir.path(), "the/DT dog/NN\n");
    let extra = format!("plugins: {}\n", empty.path().display());
    let spec = write_spec(
        dir.path(),
        "spec.yaml",
        &tagging_spec(dir.path(), "candle", &extra),
    );
    let output = sieve(&["validate", spec.to_str().unwrap()], &[]);
    assert_fails_with(
        &output,
        &[
            "no backend plugin named 'candle'",
            "the spec's `plugins` field",
            "available backend plugins: none",
        ],
    );
}

#[test]
fn a_selector_returning_an_invalid_ranking_is_named_and_refused() {
    let model = asset("all-MiniLM-L6-v2");
    let fixtures = fixture_plugin_dir();
    let plugins = plugin_dir_with(&[
        candle_library(),
        fixtures.join(library_name("sieve-fixture-invalid-ranker")),
    ]);
    for (mode, needle) in [
        ("repeat", "is repeated"),
        ("out-of-range", "is out of range"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_word_tag_data(
            dir.path(),
            "the/DT dog/NN barks/VBZ\na/DT cat/NN sleeps/VBZ\n",
        );
        let selection = format!(
            "probe: {{epochs: 1}}\nselection:\n  ranking: {{selector: invalid-ranker, params: {{mode: {mode}}}}}\n  top_n: {{target: 2}}\n"
        );
        let text = tagging_spec(dir.path(), "candle", &selection).replace(
            &format!("  path: {}\n", dir.path().display()),
            &format!("  path: {}\n", model.display()),
        );
        let spec = write_spec(dir.path(), "spec.yaml", &text);
        let output = sieve(
            &["run", spec.to_str().unwrap()],
            &[("SIEVE_PLUGIN_DIR", plugins.path())],
        );
        assert_fails_with(&output, &["'invalid-ranker'", "invalid", needle]);
        assert!(!dir.path().join("run/report.json").exists());
    }
}
