//! What Sieve writes for other programs and for logs (issue 16, item 8):
//! report.json against its schema, quiet exits on a closed pipe, no colour
//! off a terminal, each error once, chunk files within `chunk_rows`, a slim
//! model whose manifest is checked too, and warnings on stderr.
//!
//! The runs here are real (the MiniLM model through the candle plugin) but
//! small: a few dozen WSJ sentences, so that each test takes seconds.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sieve_e2e::*;

/// The first `n` lines of a WSJ split, written into `dir`.
fn wsj_lines(dir: &Path, split: &str, n: usize, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(asset(&format!("wsj/{split}.txt"))).unwrap();
    let mut lines: Vec<&str> = text.lines().take(n).collect();
    if !extra.is_empty() {
        lines.push(extra);
    }
    let path = dir.join(format!("{split}.txt"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A small tagging spec on the first WSJ sentences, its output in
/// `dir/run` and its store in `dir/store`; `dev_extra` is a line added to
/// dev, `tail` more YAML (a `selection:` section, say).
fn small_spec(dir: &Path, store: &str, dev_extra: &str, tail: &str) -> PathBuf {
    let model = asset("all-MiniLM-L6-v2");
    let train = wsj_lines(dir, "train", 60, "");
    let dev = wsj_lines(dir, "dev", 15, dev_extra);
    let test = wsj_lines(dir, "test", 15, "");
    let text = format!(
        "name: small\nseed: 7\nthreads: 2\noutput: {out}\nstore: {{dir: {store_dir}{store}}}\n\
         model: {{backend: candle, path: {model}, batch_size: 32}}\n\
         data:\n  task: tagging\n  reader: {{format: word-tag}}\n  train: {train}\n  dev: {dev}\n  test: {test}\n\
         probe: {{epochs: 2, shuffle: true}}\n{tail}",
        out = dir.join("run").display(),
        store_dir = dir.join("store").display(),
        model = model.display(),
        train = train.display(),
        dev = dev.display(),
        test = test.display(),
    );
    write_spec(dir, "small.yaml", &text)
}

/// Every selection stage and optional section, so the schema check sees
/// every part of a report.
const SELECTION: &str = "control_task: true\n\
selection:\n  layer_selector: {delta: 1.0}\n  clustering: {selector: correlation, params: {threshold: 0.3}}\n  \
ranking: {selector: elastic-net}\n  top_n: {delta: 1.0}\n  compare: [{selector: probeless}]\n\
downstream: {classifiers: [logistic-regression, knn], trees: 5}\n";

fn run_ok(args: &[&str]) -> Output {
    let output = sieve(args, &[]);
    assert!(output.status.success(), "{}", text(&output));
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `sieve` with stderr piped (not a terminal), `NO_COLOR` set or not.
fn sieve_piped(args: &[&str], no_color: bool) -> Output {
    let mut command = Command::new(sieve_bin());
    command.args(args).env_remove("SIEVE_PLUGIN_DIR");
    if no_color {
        command.env("NO_COLOR", "1");
    } else {
        command.env_remove("NO_COLOR");
    }
    command.output().expect("the sieve binary runs")
}

fn schema_validator() -> jsonschema::Validator {
    let path = root().join("docs/report.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("schema is JSON");
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid JSON Schema: {e}", path.display()))
}

/// Fails with every place where `report` departs from the schema.
fn assert_matches_schema(
    validator: &jsonschema::Validator,
    report: &serde_json::Value,
    what: &str,
) {
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}'s report.json does not match docs/report.schema.json:\n{}",
        errors.join("\n")
    );
}

/// Every property the schema lists says what it is (directly, or through
/// the definition it refers to).
fn assert_every_field_described(node: &serde_json::Value, defs: &serde_json::Value, at: &str) {
    if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, property) in properties {
            let described = property.get("description").is_some()
                || property
                    .get("$ref")
                    .and_then(|r| r.as_str())
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .is_some_and(|def| defs[def].get("description").is_some());
            assert!(described, "{at}.{name} has no description");
            assert_every_field_described(property, defs, &format!("{at}.{name}"));
        }
    }
    for key in ["items", "oneOf", "$defs"] {
        match node.get(key) {
            Some(serde_json::Value::Array(list)) => {
                for item in list {
                    assert_every_field_described(item, defs, at);
                }
            }
            Some(serde_json::Value::Object(map)) if key == "$defs" => {
                for (name, def) in map {
                    assert_every_field_described(def, defs, &format!("$defs.{name}"));
                }
            }
            Some(item @ serde_json::Value::Object(_)) => {
                assert_every_field_described(item, defs, at)
            }
            _ => {}
        }
    }
}

/// report.json had the probe as a Rust Debug string and mixed units
/// (`reduction` and `delta` in percent). Real reports, the quickstart's
/// and a selection with every stage, now match docs/report.schema.json,
/// which describes every field; shares and tolerances are fractions.
#[test]
fn real_reports_match_the_report_schema() {
    let validator = schema_validator();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap(),
    )
    .unwrap();
    assert_every_field_described(&schema, &schema["$defs"], "report");

    let out = tempfile::tempdir().unwrap();
    let spec = small_spec(out.path(), "", "", SELECTION);
    run_ok(&["run", spec.to_str().unwrap()]);
    let report = read_report(&out.path().join("run"));
    assert_matches_schema(&validator, &report, "a selection run");
    let selection = &report["selection"];
    let total = report["model"]["features"].as_f64().unwrap();
    let features = selection["features"].as_f64().unwrap();
    let removed = selection["removed_fraction"].as_f64().unwrap();
    assert!(
        (removed - (1.0 - features / total)).abs() < 1e-12,
        "{selection}"
    );
    assert_eq!(selection["max_relative_drop"], 0.01);
    assert_eq!(report["layer_selector"]["max_relative_drop"], 0.01);
    assert_eq!(report["probe"]["epochs"], 2);
    assert_eq!(report["probe"]["precision"], "f32");

    let _store = store_lock();
    let quickstart_out = tempfile::tempdir().unwrap();
    let quickstart = shipped_spec("quickstart.yaml", quickstart_out.path(), &shared_store());
    run_ok(&["run", quickstart.to_str().unwrap()]);
    let report = read_report(&quickstart_out.path().join("run"));
    assert_matches_schema(&validator, &report, "the quickstart");
    assert_eq!(report["probe"]["solver"], "adam");
}

/// `sieve plugins | head -1` panicked with a backtrace and exit code 101.
/// The reader here goes away before sieve writes: it must end quietly.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_sieve_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for _ in 0..3 {
        let mut child = Command::new(sieve_bin())
            .arg("plugins")
            .env_remove("SIEVE_PLUGIN_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the sieve binary runs");
        drop(child.stdout.take());
        let mut errors = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut errors)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success() || status.signal() == Some(13),
            "{status:?}: {errors}"
        );
        assert!(!errors.contains("panicked"), "{errors}");
    }
}

/// Colour escape codes went to pipes and log files (Slurm logs): stderr
/// here is a pipe, with and without NO_COLOR.
#[test]
fn no_colour_codes_off_a_terminal_or_with_no_color() {
    let out = tempfile::tempdir().unwrap();
    let spec = small_spec(out.path(), "", "", "");
    for no_color in [false, true] {
        let output = sieve_piped(&["extract", spec.to_str().unwrap()], no_color);
        assert!(output.status.success(), "{}", text(&output));
        let errors = stderr(&output);
        assert!(errors.contains("INFO"), "logs are written: {errors}");
        assert!(!errors.contains('\x1b'), "NO_COLOR {no_color}: {errors:?}");
    }
}

/// Every error was printed twice (logged by tracing and printed by main).
#[test]
fn an_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-plugins");
    let output = sieve(&["plugins", "--dir", missing.to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let errors = stderr(&output);
    let needle = missing.to_str().unwrap();
    assert_eq!(errors.matches(needle).count(), 1, "{errors}");
    assert!(errors.starts_with("error: "), "{errors}");
}

/// `chunk_rows: 1000` produced chunks of 6,650 rows: a chunk was at least
/// one call of 256 sentences. 60 sentences with `chunk_rows: 100` must
/// give chunk files of at most 100 rows each.
#[test]
fn chunk_files_hold_at_most_chunk_rows() {
    let out = tempfile::tempdir().unwrap();
    let spec = small_spec(out.path(), ", chunk_rows: 100", "", "");
    run_ok(&["extract", spec.to_str().unwrap()]);
    let manifests: Vec<PathBuf> = std::fs::read_dir(out.path().join("store"))
        .unwrap()
        .map(|e| e.unwrap().path().join("manifest.json"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifests[0]).unwrap()).unwrap();
    let train = &manifest["splits"][0];
    let rows: Vec<u64> = train["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rows"].as_u64().unwrap())
        .collect();
    assert!(rows.len() > 1, "{rows:?}");
    assert!(rows.iter().all(|&r| r <= 100), "chunk rows {rows:?}");
    assert_eq!(rows.iter().sum::<u64>(), train["rows"].as_u64().unwrap());
}

/// A slim model's manifest.json was not covered by its checksums:
/// swapping two class names gave wrong tags without a word.
#[test]
fn predict_refuses_a_slim_model_whose_manifest_was_edited() {
    let out = tempfile::tempdir().unwrap();
    let spec = small_spec(
        out.path(),
        "",
        "",
        "selection:\n  ranking: {selector: probeless}\n  top_n: {sizes: [40]}\n",
    );
    run_ok(&["run", spec.to_str().unwrap()]);
    let run_dir = out.path().join("run");
    let slim = out.path().join("slim");
    run_ok(&["export", run_dir.to_str().unwrap(), slim.to_str().unwrap()]);
    let input = out.path().join("words.txt");
    std::fs::write(&input, "The market fell sharply .\n").unwrap();
    let args = ["predict", slim.to_str().unwrap(), input.to_str().unwrap()];
    run_ok(&args);

    let path = slim.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["classes"].as_array_mut().unwrap().swap(0, 1);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let output = sieve(&args, &[]);
    assert!(!output.status.success(), "{}", text(&output));
    let errors = stderr(&output);
    assert!(
        errors.contains(path.to_str().unwrap()) && errors.contains("sieve export"),
        "{errors}"
    );
    assert!(output.stdout.is_empty(), "no labels are printed");
}

/// The unseen-label warning was in the report only; stderr has it too.
#[test]
fn the_unseen_label_warning_goes_to_stderr() {
    let out = tempfile::tempdir().unwrap();
    let spec = small_spec(out.path(), "", "Zyzzyva/UNSEENTAG ./.", "");
    let output = run_ok(&["run", spec.to_str().unwrap()]);
    let errors = stderr(&output);
    assert!(
        errors.contains("never occur in train") && errors.contains("UNSEENTAG"),
        "{errors}"
    );
    let report = read_report(&out.path().join("run"));
    let unseen = report["data"]["unseen_labels"].as_array().unwrap();
    assert!(unseen.iter().any(|l| l == "UNSEENTAG"), "{unseen:?}");
}
