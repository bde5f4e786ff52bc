//! Progress of the long steps when stderr is not a terminal (a pipe, a
//! file, a Slurm log): a log line per step at the interval, with done/total,
//! rate and ETA, and a final line; stdout keeps the report alone (issue 16,
//! item 9: a 7.5-minute probe stage used to print nothing).

use std::path::Path;

use sieve_e2e::*;

/// Milliseconds between two progress lines: small, so that steps of a
/// second or two on the quickstart data write several.
const INTERVAL_MS: &str = "50";

/// Runs `sieve run spec` with stderr piped and the progress interval set;
/// returns (stdout, stderr) after checking that it succeeded.
fn run_piped(spec: &Path) -> (String, String) {
    let output = sieve(
        &["run", spec.to_str().expect("utf-8 path")],
        &[("SIEVE_PROGRESS_INTERVAL_MS", Path::new(INTERVAL_MS))],
    );
    assert!(output.status.success(), "{}", text(&output));
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The lines of `log` that step `name` wrote.
fn lines_of<'a>(log: &'a str, name: &str) -> Vec<&'a str> {
    let tag = format!(" {name}: ");
    log.lines().filter(|line| line.contains(&tag)).collect()
}

/// Checks that step `name` wrote periodic lines with a count of `unit`,
/// a rate and a real ETA (once something was done), and a final line.
fn assert_progress(log: &str, name: &str, unit: &str) {
    let lines = lines_of(log, name);
    let with_eta: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" ETA ") && !l.contains("ETA unknown"))
        .collect();
    assert!(
        !with_eta.is_empty(),
        "no '{name}' progress line with an ETA in:\n{log}"
    );
    for line in &with_eta {
        assert!(
            line.contains(&format!(" {unit} ("))
                && line.contains(&format!(" {unit}/s, "))
                && line.contains(" elapsed, ETA "),
            "'{name}' line without count, rate or ETA: {line}"
        );
    }
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains(&format!("{name}: done, "))),
        "'{name}' ends without its final line:\n{lines:#?}"
    );
}

fn assert_stdout_clean(stdout: &str) {
    assert!(
        !stdout.contains("ETA") && !stdout.contains("elapsed"),
        "progress reached stdout:\n{stdout}"
    );
}

#[test]
fn a_run_without_a_terminal_logs_extraction_and_probe_progress_with_an_eta() {
    asset("all-MiniLM-L6-v2/model.safetensors");
    asset("wsj/train.txt");
    let out = tempfile::tempdir().expect("temp dir");
    // A store of its own: the shared one may hold these activations
    // already, and then nothing is extracted.
    let store = tempfile::tempdir().expect("temp dir");
    let spec = shipped_spec("quickstart.yaml", out.path(), store.path());
    let (stdout, stderr) = run_piped(&spec);

    assert_progress(&stderr, "extraction", "sentences");
    assert!(
        lines_of(&stderr, "extraction")
            .iter()
            .any(|l| l.contains("/1001 sentences")),
        "the extraction counts every sentence of the three splits:\n{stderr}"
    );
    assert_progress(&stderr, "layer probes", "batches");
    assert_stdout_clean(&stdout);
    assert!(stdout.contains("| k | layer k alone"), "{stdout}");

    // run.log keeps the same lines for a later look.
    let log = std::fs::read_to_string(out.path().join("run/run.log")).expect("run.log");
    assert!(lines_of(&log, "layer probes")
        .iter()
        .any(|l| l.contains(" ETA ")));
}

#[test]
fn selectors_and_the_top_n_search_show_progress_without_a_terminal() {
    let _store = store_lock();
    asset("all-MiniLM-L6-v2/model.safetensors");
    asset("wsj/train.txt");
    let out = tempfile::tempdir().expect("temp dir");
    let spec = shipped_spec("pos-wsj-fast.yaml", out.path(), &shared_store());
    let (stdout, stderr) = run_piped(&spec);

    assert_progress(&stderr, "layer probes", "batches");
    // The clustering's work happens inside its plugin: a heartbeat says it
    // is still running, and for how long.
    let heartbeat = lines_of(&stderr, "selector correlation");
    assert!(
        heartbeat
            .iter()
            .any(|l| l.contains("running, ") && l.contains(" elapsed")),
        "no heartbeat of the clustering:\n{stderr}"
    );
    assert!(
        heartbeat.last().is_some_and(|l| l.contains("done in ")),
        "{heartbeat:#?}"
    );
    let search = lines_of(&stderr, "top-N search");
    assert!(
        search
            .iter()
            .any(|l| l.contains("/17 candidates (") && l.contains(" ETA ")),
        "no progress of the top-N search:\n{stderr}"
    );
    assert!(
        search.last().is_some_and(|l| l.contains("done, ")),
        "{search:#?}"
    );
    assert_stdout_clean(&stdout);
}
