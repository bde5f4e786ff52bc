//! The alternative rankers (METHOD.md, "Alternative rankers") and the
//! third-party selector template, through the real runner on WSJ POS.
//!
//! - The template plugin builds out-of-tree (its own workspace), loads from
//!   a plugin folder named by the spec's `plugins:` field and ranks.
//! - At a fixed N = 27 (1% of the model's 2,688 features) the elastic-net
//!   ranking beats a random ranking of the same clustered neurons by a clear
//!   margin: what the paper's ranking is for.
//!
//! Every run shares the WSJ activations of [`shared_store`].

use std::path::{Path, PathBuf};
use std::process::Command;

use sieve_e2e::*;

/// Builds `plugins/selector-template` as a third party would (its own
/// workspace, its own target folder) and returns the library.
fn build_template() -> PathBuf {
    let manifest = root().join("plugins/selector-template/Cargo.toml");
    let target = root().join("target/template");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the template plugin failed");
    let library = target
        .join("release")
        .join(library_name("sieve-selector-template"));
    assert!(library.exists(), "{} was not built", library.display());
    library
}

/// A built-in plugin library next to `sieve`.
fn built_in(crate_name: &str) -> PathBuf {
    let path = root().join("target/release").join(library_name(crate_name));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --workspace`",
        path.display()
    );
    path
}

/// The shipped WSJ POS spec in `out` with its ranking stage replaced and,
/// when given, top-N fixed and a plugin folder named.
fn wsj_spec(out: &Path, ranking: &str, top_n: Option<&str>, plugins: Option<&Path>) -> PathBuf {
    let spec = shipped_spec("pos-wsj.yaml", out, &shared_store());
    let shipped = std::fs::read_to_string(&spec).unwrap();
    let stage = "  ranking:\n    selector: elastic-net\n    params: {stride: 1000}\n";
    assert!(shipped.contains(stage), "pos-wsj.yaml changed its ranking");
    let mut text = shipped.replace(stage, &format!("  ranking: {ranking}\n"));
    if let Some(top_n) = top_n {
        assert!(text.contains("  top_n: {delta: 1.0}"), "pos-wsj.yaml top_n");
        text = text.replace("  top_n: {delta: 1.0}", &format!("  top_n: {top_n}"));
    }
    if let Some(dir) = plugins {
        text.push_str(&format!("plugins: {}\n", dir.display()));
    }
    std::fs::write(&spec, text).unwrap();
    spec
}

/// Runs a spec and returns its report.
fn run(spec: &Path, out: &Path) -> serde_json::Value {
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    read_report(&out.join("run"))
}

fn test_score(report: &serde_json::Value) -> f64 {
    report["selection"]["test"]
        .as_f64()
        .unwrap_or_else(|| panic!("selection.test: {}", report["selection"]))
}

#[test]
fn the_template_plugin_builds_out_of_tree_and_ranks_from_a_spec() {
    asset("wsj/train.txt");
    let template = build_template();
    let plugins = plugin_dir_with(&[
        candle_library(),
        built_in("sieve-selector-correlation"),
        template,
    ]);
    let listed = sieve(&["plugins", "--dir", plugins.path().to_str().unwrap()], &[]);
    let listing = text(&listed);
    assert!(listed.status.success(), "{listing}");
    assert!(
        listing.contains("template") && !listing.contains("rejected"),
        "{listing}"
    );

    let _store = store_lock();
    let out = tempfile::tempdir().unwrap();
    let spec = wsj_spec(
        out.path(),
        "{selector: template, params: {}}",
        Some("{target: 100}"),
        Some(plugins.path()),
    );
    let report = run(&spec, out.path());
    let selection = &report["selection"];
    assert_eq!(selection["selector"], "template", "{selection}");
    let features = selection["features"].as_u64().expect("selection.features");
    assert!(features > 0 && features <= 100, "{selection}");
    assert_eq!(
        selection["neurons"].as_array().unwrap().len() as u64,
        features
    );
    let log = std::fs::read_to_string(out.path().join("run/run.log")).unwrap_or_default();
    assert!(log.contains("ranked by variance"), "{log}");
}

#[test]
fn elastic_net_beats_random_at_one_percent_of_the_features() {
    asset("wsj/train.txt");
    let _store = store_lock();
    let top_27 = Some("{target: 27}");

    let out = tempfile::tempdir().unwrap();
    let spec = wsj_spec(
        out.path(),
        "{selector: elastic-net, params: {stride: 1000}}",
        top_27,
        None,
    );
    let elastic = run(&spec, out.path());

    let out_random = tempfile::tempdir().unwrap();
    let spec = wsj_spec(
        out_random.path(),
        "{selector: random, params: {}}",
        top_27,
        None,
    );
    let random = run(&spec, out_random.path());

    for report in [&elastic, &random] {
        assert_eq!(
            report["selection"]["features"], 27,
            "{}",
            report["selection"]
        );
    }
    assert_eq!(random["selection"]["selector"], "random");
    let (ours, chance) = (test_score(&elastic), test_score(&random));
    eprintln!("top-27 test accuracy: elastic-net {ours:.4}, random {chance:.4}");
    // Measured (seed 42): elastic-net 0.6709, random 0.6114 (another
    // random seed, 7: 0.5763); asserted with half the measured margin.
    assert!(
        ours >= chance + 0.03,
        "elastic-net {ours:.4} vs random {chance:.4}"
    );
}

#[test]
fn lasso_and_probeless_rankings_beat_the_bottom_baseline() {
    asset("wsj/train.txt");
    let _store = store_lock();
    let top_27 = Some("{target: 27}");
    let mut scores = Vec::new();
    for (name, ranking) in [
        ("lasso", "{selector: lasso, params: {}}"),
        ("bottom", "{selector: lasso, params: {reverse: true}}"),
        ("probeless", "{selector: probeless, params: {}}"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let spec = wsj_spec(out.path(), ranking, top_27, None);
        let report = run(&spec, out.path());
        assert_eq!(report["selection"]["features"], 27, "{name}");
        scores.push(test_score(&report));
    }
    let (lasso, bottom, probeless) = (scores[0], scores[1], scores[2]);
    eprintln!(
        "top-27 test accuracy: lasso {lasso:.4}, bottom {bottom:.4}, probeless {probeless:.4}"
    );
    // Measured (seed 42): lasso 0.7304, bottom 0.5312, probeless 0.7232
    // (elastic-net 0.6709, selectivity 0.6474, random 0.6114).
    assert!(
        lasso >= bottom + 0.10,
        "lasso {lasso:.4} vs bottom {bottom:.4}"
    );
    assert!(
        probeless >= bottom + 0.10,
        "probeless {probeless:.4} vs bottom {bottom:.4}"
    );
}

#[test]
fn rankers_compared_side_by_side_in_one_table_and_chart() {
    let _store = store_lock();
    asset("wsj/train.txt");
    let out = tempfile::tempdir().unwrap();
    let spec = shipped_spec("compare-rankers-wsj.yaml", out.path(), &shared_store());
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Rankers compared"));
    let run_dir = out.path().join("run");
    let report = read_report(&run_dir);
    let curves = report["comparison"].as_array().expect("comparison");
    let names: Vec<&str> = curves
        .iter()
        .map(|c| c["selector"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "elastic-net",
            "lasso",
            "probeless",
            "selectivity",
            "random",
            "lasso",
            "ap",
            "gaussian",
            "tree-importance"
        ]
    );
    // Every ranker is scored on the same grid of N.
    let grid = |c: &serde_json::Value| -> Vec<u64> {
        c["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["n"].as_u64().unwrap())
            .collect()
    };
    assert!(curves
        .iter()
        .all(|c| grid(c) == grid(&curves[0]) && c["seconds"].as_f64().is_some()));
    let test_at = |c: &serde_json::Value, n: u64| -> f64 {
        let points = c["points"].as_array().unwrap();
        let point = points.iter().find(|p| p["n"] == n).expect("grid point");
        point["test"].as_f64().unwrap()
    };
    // Measured at N = 26 (~1%): elastic-net 66.97%, random 60.02%, bottom
    // 51.04%; the informed ranker beats random, random beats the bottom.
    let (elastic, random, bottom) = (
        test_at(&curves[0], 26),
        test_at(&curves[4], 26),
        test_at(&curves[5], 26),
    );
    assert!(
        elastic > random + 0.03,
        "elastic-net {elastic} vs random {random}"
    );
    assert!(random > bottom + 0.03, "random {random} vs bottom {bottom}");
    // Measured at N = 26: ap 67.17%, gaussian (budget 30) 72.84%,
    // tree-importance 69.09%; each beats random by a clear margin.
    for (curve, name) in curves[6..]
        .iter()
        .zip(["ap", "gaussian", "tree-importance"])
    {
        let score = test_at(curve, 26);
        assert!(score > random + 0.03, "{name} {score} vs random {random}");
    }
    for file in ["compare.svg", "compare.png"] {
        assert!(
            std::fs::metadata(run_dir.join(file))
                .map(|m| m.len() > 5_000)
                .unwrap_or(false),
            "{file}"
        );
    }
}
