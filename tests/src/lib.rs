//! Helpers for the end-to-end tests: locate the built `sieve` binary, the
//! real assets and the fixture plugins, and run the binary like a user.
//!
//! The tests drive `target/release/sieve` (built by `make test` with every
//! plugin next to it), so they exercise the real CLI, plugin loading and
//! reports. Missing prerequisites fail the test with the command to run;
//! nothing is silently skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// The release `sieve` binary; its folder is the default plugin folder.
/// Fails, with the command to run, when the binary or a plugin library
/// beside it is older than its sources: `cargo test -p sieve-e2e` alone
/// does not rebuild them, and a stale binary would test old code.
pub fn sieve_bin() -> PathBuf {
    let bin = root().join("target/release/sieve");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --workspace` (or `make test`) first",
        bin.display()
    );
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(check_artifacts_are_fresh);
    bin
}

/// Every built artifact the tests load, with the source folders it is
/// built from.
fn artifacts() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let release = root().join("target/release");
    let mut built = vec![(
        release.join("sieve"),
        vec![root().join("runner/src"), root().join("core/src")],
    )];
    let plugins = std::fs::read_dir(root().join("plugins")).expect("plugins/ exists");
    for entry in plugins.flatten() {
        let crate_dir = entry.path();
        let library = release.join(library_name(&format!(
            "sieve-{}",
            entry.file_name().to_string_lossy()
        )));
        if library.exists() {
            built.push((
                library,
                vec![crate_dir.join("src"), root().join("core/src")],
            ));
        }
    }
    built
}

fn check_artifacts_are_fresh() {
    for (artifact, sources) in artifacts() {
        let built = modified(&artifact);
        if let Some(newer) = sources.iter().find_map(|dir| newer_file(dir, built)) {
            panic!(
                "{} is older than {}: run `cargo build --release --workspace` (or `make test`) so the tests run the current code",
                artifact.display(),
                newer.display()
            );
        }
    }
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A file under `dir` modified after `time`, if any.
fn newer_file(dir: &Path, time: std::time::SystemTime) -> Option<PathBuf> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if modified(&path) > time {
                return Some(path);
            }
        }
    }
    None
}

/// A real asset, failing with the fetch command when it is missing.
pub fn asset(relative: &str) -> PathBuf {
    let path = root().join("assets").join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/fetch-assets.sh` (or `make test`) first",
        path.display()
    );
    path
}

/// Runs `sieve` with `args`; `SIEVE_PLUGIN_DIR` is cleared unless `envs`
/// sets it, so the default plugin folder is what is tested.
pub fn sieve(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(sieve_bin());
    command.args(args).env_remove("SIEVE_PLUGIN_DIR");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("the sieve binary runs")
}

/// stdout and stderr of a finished command, for assertions and messages.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Builds the deliberately broken plugins once and returns their folder
/// (`target/fixtures/release`).
pub fn fixture_plugin_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = root().join("tests/fixtures/plugins/Cargo.toml");
            let target = root().join("target/fixtures");
            let status = Command::new(env!("CARGO"))
                .args(["build", "--release", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the fixture plugins failed");
            target.join("release")
        })
        .clone()
}

/// The dynamic library file name of a crate on this platform.
pub fn library_name(crate_name: &str) -> String {
    let stem = crate_name.replace('-', "_");
    if cfg!(target_os = "macos") {
        format!("lib{stem}.dylib")
    } else if cfg!(target_os = "windows") {
        format!("{stem}.dll")
    } else {
        format!("lib{stem}.so")
    }
}

/// A plugin folder holding copies of the given libraries.
pub fn plugin_dir_with(libraries: &[PathBuf]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for library in libraries {
        let name = library.file_name().expect("library file name");
        std::fs::copy(library, dir.path().join(name)).expect("copy plugin");
    }
    dir
}

/// The real candle backend library built next to `sieve`.
pub fn candle_library() -> PathBuf {
    let path = root()
        .join("target/release")
        .join(library_name("sieve-backend-candle"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --workspace`",
        path.display()
    );
    path
}

/// Writes a spec into `dir` and returns its path.
pub fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write spec");
    path
}

/// Reads a run's report.json.
pub fn read_report(output_dir: &Path) -> serde_json::Value {
    let path = output_dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("report.json is JSON")
}

/// A spec from `configs/`, copied into `out` with its output folder set to
/// `out/run`, its activation store set to `store` and asset paths made
/// absolute, so tests leave the repository's runs/ alone.
pub fn shipped_spec(config: &str, out: &Path, store: &Path) -> PathBuf {
    let shipped_path = root().join("configs").join(config);
    let shipped = std::fs::read_to_string(&shipped_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", shipped_path.display()));
    let mut replaced = (false, false);
    let lines: Vec<String> = shipped
        .lines()
        .map(|line| {
            if line.starts_with("output:") {
                replaced.0 = true;
                format!("output: {}", out.join("run").display())
            } else if line.starts_with("store:") {
                replaced.1 = true;
                format!("store: {{dir: {}}}", store.display())
            } else {
                line.replace("../assets", &root().join("assets").display().to_string())
            }
        })
        .collect();
    assert!(
        replaced.0 && replaced.1,
        "{config} lost its output or store line"
    );
    write_spec(out, config, &(lines.join("\n") + "\n"))
}

/// The activation store the WSJ tests share (one extraction for all).
pub fn shared_store() -> PathBuf {
    root().join("target/e2e-activations")
}

/// Serialises the tests that share [`shared_store`]: two runs extracting
/// the same entry at once would write the same partial folder.
pub fn store_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A tiny word/TAG corpus in `dir`: `train` as given, one two-word
/// sentence each for dev and test.
pub fn write_tiny_word_tag_data(dir: &Path, train: &str) {
    std::fs::write(dir.join("train.txt"), train).expect("write train.txt");
    std::fs::write(dir.join("dev.txt"), "the/DT dog/NN\n").expect("write dev.txt");
    std::fs::write(dir.join("test.txt"), "a/DT cat/NN\n").expect("write test.txt");
}
