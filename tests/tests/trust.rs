//! Trustworthy runs (issue 16, items 1-5), through the real binary on the
//! real model and WSJ data: `--force` never deletes what Sieve did not
//! write, a changed model or data file is always noticed, a run's outputs
//! form one sealed set that export checks, two runs share one store at the
//! same moment, and outputs honour the umask.
//!
//! The runs use the first 250 WSJ sentences and short probes: what is
//! tested is which files exist and what is reused, not accuracy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sieve_e2e::*;

/// A small WSJ tagging spec over `data` (250 units from unit 1).
fn small_spec(
    dir: &Path,
    name: &str,
    model: &Path,
    data: &Path,
    store: &Path,
    extra: &str,
) -> PathBuf {
    small_spec_from(dir, name, model, data, store, 1, extra)
}

/// A tagging spec over units `first..first + 250` of `data`: 150 train,
/// 50 dev, 50 test.
fn small_spec_from(
    dir: &Path,
    name: &str,
    model: &Path,
    data: &Path,
    store: &Path,
    first: usize,
    extra: &str,
) -> PathBuf {
    let text = format!(
        "name: {name}
seed: 42
threads: 2
output: {out}
store: {{dir: {store}}}
model: {{backend: candle, path: {model}, batch_size: 32}}
data:
  task: tagging
  reader: {{format: word-tag}}
  file: {data}
  split: {{train: [{first}, {train_end}], dev: [{dev_start}, {dev_end}], test: [{test_start}, {test_end}]}}
probe: {{solver: adam, epochs: 2, batch_size: 128, shuffle: false}}
{extra}",
        out = dir.join(name).display(),
        store = store.display(),
        model = model.display(),
        data = data.display(),
        train_end = first + 149,
        dev_start = first + 150,
        dev_end = first + 199,
        test_start = first + 200,
        test_end = first + 249,
    );
    write_spec(dir, &format!("{name}.yaml"), &text)
}

const SELECTION: &str = "selection:
  ranking: {selector: elastic-net, params: {stride: 1000}}
  top_n: {target: 40}
";

fn wsj() -> PathBuf {
    asset("wsj/train.txt")
}

fn model() -> PathBuf {
    asset("all-MiniLM-L6-v2")
}

fn run_ok(spec: &Path) -> Output {
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(
        output.status.success(),
        "sieve run failed:\n{}",
        text(&output)
    );
    output
}

/// A copy of the MiniLM folder that a test may edit.
fn model_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("model");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(model()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    copy
}

/// Every file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// A finished selection run in `dir/sel` with its own store in `dir/store`.
fn selection_run(dir: &Path) -> PathBuf {
    let spec = small_spec(dir, "sel", &model(), &wsj(), &dir.join("store"), SELECTION);
    run_ok(&spec);
    dir.join("sel")
}

#[test]
fn export_force_never_deletes_the_runs_the_store_or_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    let run = selection_run(runs);
    std::fs::create_dir_all(runs.join("other-run")).unwrap();
    std::fs::write(runs.join("other-run/report.json"), b"{}").unwrap();
    let before = tree(runs);
    let run_arg = run.to_str().unwrap();

    // The folder holding the run (and the store and another run).
    let output = sieve(&["export", run_arg, runs.to_str().unwrap(), "--force"], &[]);
    assert!(
        !output.status.success(),
        "export into the runs folder was accepted"
    );
    assert!(
        text(&output).contains("contains the run folder"),
        "{}",
        text(&output)
    );
    // The run folder itself.
    let output = sieve(&["export", run_arg, run_arg, "--force"], &[]);
    assert!(
        !output.status.success(),
        "export over its own run was accepted"
    );
    assert!(
        text(&output).contains("is the run folder"),
        "{}",
        text(&output)
    );
    // The store.
    let store = runs.join("store");
    let output = sieve(
        &["export", run_arg, store.to_str().unwrap(), "--force"],
        &[],
    );
    assert!(
        !output.status.success(),
        "export over the store was accepted"
    );
    assert!(
        text(&output).contains("activation store"),
        "{}",
        text(&output)
    );
    assert_eq!(tree(runs), before, "a refused export changed files");

    // A folder of the user's own.
    let mine = runs.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"keep me").unwrap();
    let output = sieve(&["export", run_arg, mine.to_str().unwrap(), "--force"], &[]);
    assert!(
        !output.status.success(),
        "export over a user's folder was accepted"
    );
    assert!(
        text(&output).contains("not an earlier `sieve export`"),
        "{}",
        text(&output)
    );
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"keep me");

    // An earlier export is replaced, but not with a foreign file in it.
    let slim = runs.join("slim");
    let slim_arg = slim.to_str().unwrap();
    let output = sieve(&["export", run_arg, slim_arg], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let output = sieve(&["export", run_arg, slim_arg, "--force"], &[]);
    assert!(
        output.status.success(),
        "re-export over an export: {}",
        text(&output)
    );
    std::fs::write(slim.join("predictions.txt"), b"mine").unwrap();
    let output = sieve(&["export", run_arg, slim_arg, "--force"], &[]);
    assert!(
        !output.status.success(),
        "an export with a foreign file was replaced"
    );
    assert!(
        text(&output).contains("predictions.txt"),
        "{}",
        text(&output)
    );
    assert!(slim.join("predictions.txt").exists());
}

/// Zeroes 4 MB in the middle of `path`, keeping its length.
fn zero_the_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + (4 << 20)].fill(0);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_model_edited_in_the_middle_is_not_served_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_copy(dir.path());
    let store = dir.path().join("store");
    let spec = small_spec(dir.path(), "m", &model, &wsj(), &store, "");
    run_ok(&spec);
    let first = read_report(&dir.path().join("m"));
    zero_the_middle(&model.join("model.safetensors"));
    let output = run_ok(&spec);
    let second = read_report(&dir.path().join("m"));
    assert_eq!(
        second["extraction"]["reused"],
        false,
        "stale activations reused:\n{}",
        text(&output)
    );
    assert!(
        !text(&output).contains("reusing activations"),
        "{}",
        text(&output)
    );
    assert_ne!(first["extraction"]["store"], second["extraction"]["store"]);
}

/// A word/TAG file over 16 MiB whose used sentences sit in its middle,
/// padded before and after with sentences outside the split.
fn large_data_file(dir: &Path) -> (PathBuf, usize) {
    let real = std::fs::read_to_string(wsj()).unwrap();
    let real: Vec<&str> = real.lines().take(250).collect();
    let filler = "Filler/NN sentence/NN of/IN padding/NN ./.";
    let pad = (9 << 20) / (filler.len() + 1);
    let mut text = String::new();
    for _ in 0..pad {
        text.push_str(filler);
        text.push('\n');
    }
    for line in &real {
        text.push_str(line);
        text.push('\n');
    }
    for _ in 0..pad {
        text.push_str(filler);
        text.push('\n');
    }
    let path = dir.join("large.txt");
    std::fs::write(&path, text).unwrap();
    (path, pad + 1)
}

#[test]
fn a_same_length_edit_in_the_middle_of_a_large_data_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let (data, first) = large_data_file(dir.path());
    assert!(std::fs::metadata(&data).unwrap().len() > 16 << 20);
    let store = dir.path().join("store");
    let spec = small_spec_from(dir.path(), "d", &model(), &data, &store, first, "");
    run_ok(&spec);
    // Retag the first word of the first training sentence, same length.
    let mut content = std::fs::read_to_string(&data).unwrap();
    let start = (first - 1) * ("Filler/NN sentence/NN of/IN padding/NN ./.".len() + 1);
    let token_end = start + content[start..].find(' ').unwrap();
    let slash = start + content[start..token_end].rfind('/').unwrap();
    let tag = &content[slash + 1..token_end];
    let replacement: String = if tag.len() == 2 && tag != "XX" {
        "XX".into()
    } else {
        "Z".repeat(tag.len())
    };
    content.replace_range(slash + 1..token_end, &replacement);
    std::fs::write(&data, &content).unwrap();
    let output = run_ok(&spec);
    let report = read_report(&dir.path().join("d"));
    assert_eq!(
        report["extraction"]["reused"],
        false,
        "stale labels reused:\n{}",
        text(&output)
    );
    assert_eq!(report["results_reused"], false);
}

#[test]
fn export_refuses_a_run_whose_model_changed_since() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_copy(dir.path());
    let spec = small_spec(
        dir.path(),
        "sel",
        &model,
        &wsj(),
        &dir.path().join("store"),
        SELECTION,
    );
    run_ok(&spec);
    zero_the_middle(&model.join("model.safetensors"));
    let run = dir.path().join("sel");
    let out = dir.path().join("slim");
    let output = sieve(
        &["export", run.to_str().unwrap(), out.to_str().unwrap()],
        &[],
    );
    assert!(
        !output.status.success(),
        "a slim model of a changed model was exported"
    );
    assert!(
        text(&output).contains("changed since the run"),
        "{}",
        text(&output)
    );
    assert!(!out.exists());
}

#[test]
fn a_run_that_fails_at_the_end_leaves_the_earlier_outputs_and_no_seal() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = small_spec(dir.path(), "r", &model(), &wsj(), &store, SELECTION);
    run_ok(&spec);
    let run = dir.path().join("r");
    let old_spec = std::fs::read(run.join("spec.yaml")).unwrap();
    assert!(run.join("outputs.json").exists());
    // A changed spec whose results cannot be written: a folder stands
    // where results.json must go.
    let changed = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("epochs: 2", "epochs: 3");
    std::fs::write(&spec, changed).unwrap();
    std::fs::remove_file(run.join("results.json")).unwrap();
    std::fs::create_dir(run.join("results.json")).unwrap();
    std::fs::write(run.join("results.json/keep"), b"").unwrap();
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(!output.status.success(), "{}", text(&output));
    assert_eq!(
        std::fs::read(run.join("spec.yaml")).unwrap(),
        old_spec,
        "the new spec.yaml was written beside outputs it did not produce"
    );
    assert!(
        !run.join("outputs.json").exists(),
        "an unfinished set still looks complete"
    );
    let output = sieve(
        &[
            "export",
            run.to_str().unwrap(),
            dir.path().join("slim").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("did not finish"),
        "{}",
        text(&output)
    );
}

#[test]
fn two_runs_sharing_a_store_at_once_both_finish_and_extract_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let specs: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|name| small_spec(dir.path(), name, &model(), &wsj(), &store, ""))
        .collect();
    let children: Vec<_> = specs
        .iter()
        .map(|spec| {
            Command::new(sieve_bin())
                .args(["run", spec.to_str().unwrap()])
                .env_remove("SIEVE_PLUGIN_DIR")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a run sharing the store failed:\n{}",
            text(&output)
        );
    }
    let reused: Vec<bool> = ["a", "b"]
        .iter()
        .map(|name| read_report(&dir.path().join(name))["extraction"]["reused"] == true)
        .collect();
    assert_eq!(
        reused.iter().filter(|r| **r).count(),
        1,
        "exactly one run extracts: {reused:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "stale partial folders: {leftovers:?}");
}

#[cfg(unix)]
#[test]
fn outputs_and_store_files_honour_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = small_spec(dir.path(), "u", &model(), &wsj(), &store, "");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec '{}' run '{}'",
            sieve_bin().display(),
            spec.display()
        ))
        .env_remove("SIEVE_PLUGIN_DIR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let run = dir.path().join("u");
    for file in ["report.json", "results.json", "spec.yaml", "outputs.json"] {
        assert_eq!(mode(&run.join(file)), 0o644, "{file}");
    }
    let entry = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    assert_eq!(mode(&entry.join("manifest.json")), 0o644);
    assert_eq!(mode(&entry.join("train/00000.safetensors")), 0o644);
}
