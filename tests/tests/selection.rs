//! The paper's procedure (LayerSelector, correlation clustering,
//! elastic-net ranking, top-N search) on the real model and data, through
//! the real runner and the real selector plugins.
//!
//! Thresholds are the measurements of BENCHMARKS.md with margin.

use sieve_e2e::*;

fn number(value: &serde_json::Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"))
}

/// Checks the selection block of a report against the model's size and
/// returns (features kept, test score kept as a share of the oracle's).
fn check_selection_block(report: &serde_json::Value) -> (usize, f64) {
    let total = report["model"]["features"].as_u64().unwrap() as usize;
    let selection = &report["selection"];
    let features = selection["features"].as_u64().expect("selection.features") as usize;
    let neurons = selection["neurons"].as_array().expect("selection.neurons");
    assert_eq!(
        neurons.len(),
        features,
        "one [layer, neuron] per kept feature"
    );
    let layers = report["model"]["layers"].as_u64().unwrap();
    let hidden = report["model"]["hidden"].as_u64().unwrap();
    let mut seen = std::collections::HashSet::new();
    for pair in neurons {
        let (layer, neuron) = (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap());
        assert!(layer < layers && neuron < hidden, "neuron {pair} exists");
        assert!(seen.insert((layer, neuron)), "neuron {pair} listed once");
    }
    let reduction = number(&selection["removed_fraction"], "removed_fraction");
    let expected = 1.0 - features as f64 / total as f64;
    assert!(
        (reduction - expected).abs() < 1e-9,
        "reduction {reduction} vs {expected}"
    );
    let kept = number(&selection["test"], "selection.test")
        / number(&report["oracle"]["test"], "oracle.test");
    (features, kept)
}

/// The four downstream classifiers ran on the selected neurons and learned
/// the task. Floors are the measurements of BENCHMARKS.md less a margin.
fn check_downstream(report: &serde_json::Value, features: usize) {
    let downstream = &report["downstream"];
    assert_eq!(downstream["feature_set"], "selection");
    assert_eq!(downstream["features"].as_u64(), Some(features as u64));
    let majority = number(&report["majority_baseline"]["test"], "majority");
    let floors = [
        ("logistic-regression", 0.85),
        ("linear-svm", 0.83),
        ("random-forest", 0.70),
        ("knn", 0.75),
    ];
    let scores = downstream["classifiers"].as_array().expect("classifiers");
    assert_eq!(scores.len(), floors.len(), "{downstream}");
    for (score, (name, floor)) in scores.iter().zip(floors) {
        assert_eq!(score["classifier"], name);
        assert_eq!(score["features"].as_u64(), Some(features as u64));
        let test = number(&score["test"], name);
        assert!(
            test > floor && test > majority + 0.3,
            "{name}: {test} (floor {floor})"
        );
    }
}

#[test]
fn ccfs_on_wsj_pos_keeps_few_neurons_and_the_oracles_accuracy() {
    let _store = store_lock();
    asset("wsj/train.txt");
    let out = tempfile::tempdir().unwrap();
    let spec = shipped_spec("pos-wsj.yaml", out.path(), &shared_store());
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("LayerSelector") && stdout.contains("top-N by elastic-net"),
        "{stdout}"
    );
    let run = out.path().join("run");
    let report = read_report(&run);

    // LayerSelector: measured k = 2 (92.65% test); it must stop below the
    // last layer so the forward pass can be truncated.
    let ls = &report["layer_selector"];
    let k = ls["k"].as_u64().expect("layer_selector.k");
    assert!(k < 6, "LayerSelector picked k = {k}");
    assert_eq!(ls["features"].as_u64().unwrap(), (k + 1) * 384);

    // Clustering: measured 539 of 1,152 neurons at threshold 0.3.
    let cc = &report["clustering"];
    let clustered = cc["features"].as_u64().unwrap();
    assert!(
        clustered > 100 && clustered < (k + 1) * 384,
        "clustering kept {clustered}"
    );
    assert_eq!(cc["params"]["threshold"], 0.3);

    // CCFS: measured 241 features (9.0%) at 98.1% of the oracle's test
    // accuracy; the issue asks for at most 15% and at least 97%.
    let (features, kept) = check_selection_block(&report);
    assert!(features <= 2688 * 15 / 100, "CCFS kept {features} features");
    assert!(
        kept >= 0.97,
        "CCFS keeps {:.2}% of the oracle's accuracy",
        kept * 100.0
    );
    let selected_layers: Vec<u64> = report["selection"]["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert!(
        selected_layers.iter().all(|&l| l <= k),
        "neurons come from layers 0..=k"
    );

    // Control task: measured oracle 92.93% task vs 68.81% control
    // (selectivity 24.1 points), selection 91.17% vs 57.51% (33.7 points).
    let control = &report["control"];
    let selectivity = |row: &str| number(&control[row]["selectivity"]["test"], "selectivity");
    assert!(
        selectivity("oracle") > 0.15,
        "oracle selectivity {}",
        selectivity("oracle")
    );
    assert!(
        selectivity("selection") > 0.25,
        "selection selectivity {}",
        selectivity("selection")
    );
    assert_eq!(
        control["selection"]["features"].as_u64(),
        Some(features as u64)
    );

    check_downstream(&report, features);

    // The charts: SVG and PNG of each, listed in the report.
    for chart in ["layers", "neurons", "clusters"] {
        let svg = std::fs::read_to_string(run.join(format!("{chart}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("</svg>"),
            "{chart}.svg"
        );
        let png = std::fs::read(run.join(format!("{chart}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{chart}.png"
        );
    }
    assert_eq!(report["plots"].as_array().unwrap().len(), 6);
    let sizes: u64 = cc["cluster_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .sum();
    assert_eq!(
        sizes,
        (k + 1) * 384,
        "every neuron of the kept layers is in one cluster"
    );

    // The selection is saved; the same spec again reuses it unchanged.
    assert!(run.join("results.json").exists());
    let again = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let second = read_report(&run);
    assert_eq!(second["results_reused"], true);
    assert_eq!(second["selection"], report["selection"]);

    // Same spec and seed, recomputed from scratch: the same selection.
    let fresh = sieve(&["run", "--recompute", spec.to_str().unwrap()], &[]);
    assert!(fresh.status.success(), "{}", text(&fresh));
    let third = read_report(&run);
    assert_eq!(third["results_reused"], false);
    assert_eq!(
        third["selection"]["neurons"],
        report["selection"]["neurons"]
    );
    assert_eq!(third["clustering"], report["clustering"]);

    // LayerSelector's early stop (pos-wsj-fast.yaml: the same selection
    // stages, no single-layer probes, cumulative probes only up to the
    // choice): the same layers and neurons from fewer probes.
    let fast_out = tempfile::tempdir().unwrap();
    let fast_spec = shipped_spec("pos-wsj-fast.yaml", fast_out.path(), &shared_store());
    let fast = sieve(&["run", fast_spec.to_str().unwrap()], &[]);
    assert!(fast.status.success(), "{}", text(&fast));
    let fast = read_report(&fast_out.path().join("run"));
    assert_eq!(fast["layer_selector"], report["layer_selector"]);
    assert_eq!(fast["selection"]["neurons"], report["selection"]["neurons"]);
    let layers = fast["layers"].as_array().expect("report.layers");
    let trained = |field: &str| layers.iter().filter(|l| !l[field].is_null()).count();
    assert_eq!(trained("single_dev"), 0, "no single-layer probes");
    // Layers 0..=k, one group past k at most, and the oracle.
    assert!(
        trained("cumulative_dev") <= k as usize + 3 && trained("cumulative_dev") < 7,
        "{} cumulative probes trained",
        trained("cumulative_dev")
    );
    assert!(!layers[6]["cumulative_dev"].is_null(), "the oracle");

    // The same selection with bf16 products (pos-wsj-bf16.yaml; AMX tiles
    // where the CPU has them, the f32 product of bf16 values elsewhere):
    // the rounding moves probe accuracies by tenths of a point, so the
    // layer choice and the oracle agree and the search may stop at another
    // N (403 measured, 15.0%: BENCHMARKS.md).
    let bf16_out = tempfile::tempdir().unwrap();
    let bf16_spec = shipped_spec("pos-wsj-bf16.yaml", bf16_out.path(), &shared_store());
    let bf16 = sieve(&["run", bf16_spec.to_str().unwrap()], &[]);
    assert!(bf16.status.success(), "{}", text(&bf16));
    let bf16_run = bf16_out.path().join("run");
    let bf16 = read_report(&bf16_run);
    assert_eq!(bf16["probe"]["precision"], "bf16", "{}", bf16["probe"]);
    assert_eq!(bf16["layer_selector"]["k"], report["layer_selector"]["k"]);
    let oracle_gap = number(&bf16["oracle"]["test"], "bf16 oracle")
        - number(&report["oracle"]["test"], "oracle");
    assert!(
        oracle_gap.abs() < 0.005,
        "bf16 oracle {oracle_gap:+} from f32"
    );
    let (features, kept) = check_selection_block(&bf16);
    assert!(
        features <= 2688 / 5,
        "bf16 selection keeps {features} features"
    );
    assert!(
        kept >= 0.97,
        "bf16 selection keeps {kept} of the oracle's accuracy"
    );
    let results = std::fs::read_to_string(bf16_run.join("results.json")).unwrap();
    assert!(results.contains("precision=bf16"), "the bf16 solver ran");
}

#[test]
fn sentiment_on_movie_snippets_beats_the_majority_class_with_few_neurons() {
    asset("movies/train.tsv");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("activations");
    let spec = shipped_spec("sentiment-movies.yaml", out.path(), &store);
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let report = read_report(&out.path().join("run"));
    assert_eq!(report["data"]["classes"], 2);
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{}",
        report["warnings"]
    );

    // Measured: oracle 81.39% test (mean pooling, standardised, shuffled);
    // the issue asks for at least 78%.
    let oracle = number(&report["oracle"]["test"], "oracle.test");
    assert!(oracle >= 0.78, "oracle test {oracle}");
    let majority = number(&report["majority_baseline"]["test"], "majority.test");
    assert!(
        oracle > majority + 0.2,
        "oracle {oracle} vs majority {majority}"
    );

    // Measured: a budget of 134 features (4.99%) from all layers keeps
    // 99.9% of the oracle (81.30% test); the issue asks for at most 5% of
    // the features at 97% of the oracle's accuracy.
    let (features, kept) = check_selection_block(&report);
    assert!(
        features <= 2688 * 5 / 100,
        "selection kept {features} features"
    );
    assert_eq!(report["selection"]["budget_features"], 134);
    assert!(
        kept >= 0.97,
        "selection keeps {:.2}% of the oracle's accuracy",
        kept * 100.0
    );
}

#[test]
fn a_spec_naming_a_missing_selector_fails_before_extracting() {
    asset("wsj/train.txt");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("activations");
    let spec = shipped_spec("pos-wsj.yaml", out.path(), &store);
    let text_spec = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("selector: elastic-net", "selector: elastic-nett");
    std::fs::write(&spec, text_spec).unwrap();
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("elastic-nett"), "{message}");
    assert!(!store.exists(), "nothing was extracted: {message}");
}

#[test]
fn regression_on_movie_ratings_reports_pearson_and_selects() {
    asset("movies/train.tsv");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("activations");
    let spec = shipped_spec("sentiment-rating.yaml", out.path(), &store);
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let report = read_report(&out.path().join("run"));
    assert_eq!(report["metric"], "pearson");
    assert!(
        report["majority_baseline"].is_null(),
        "no majority class for regression"
    );

    // Measured: Pearson r 0.7266 on test for the oracle (mean pooling,
    // standardised features, MSE probe); 403 features keep r = 0.708.
    let oracle = number(&report["oracle"]["test"], "oracle.test");
    assert!(oracle > 0.65, "oracle Pearson r {oracle}");
    let (features, kept) = check_selection_block(&report);
    assert!(features < 2688 / 4, "selection kept {features} features");
    assert!(
        kept > 0.93,
        "selection keeps {:.2}% of the oracle's r",
        kept * 100.0
    );
}
