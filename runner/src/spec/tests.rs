use super::*;

const VALID: &str = "\
output: runs/x
model:
  backend: candle
  path: model
data:
  task: tagging
  reader: {format: word-tag}
  train: train.txt
  dev: dev.txt
  test: test.txt
";

#[test]
fn a_minimal_spec_gets_the_paper_defaults() {
    let spec = parse_spec_text(VALID).unwrap();
    assert_eq!(spec.seed, 42);
    assert_eq!(spec.model.backend.value, "candle");
    assert_eq!(spec.data.subword_pooling, SubwordPoolingSpec::Last);
    assert_eq!(spec.data.sentence_pooling, SentencePoolingSpec::Cls);
    assert!(spec.store.reuse);
}

#[test]
fn a_misspelled_field_is_an_error_with_its_line() {
    let text = VALID.replace(
        "  task: tagging",
        "  task: tagging\n  subwrod_pooling: last",
    );
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("subwrod_pooling"), "{error}");
    assert!(error.contains("line 7"), "{error}");
}

#[test]
fn a_wrong_type_is_an_error_with_its_line() {
    let text = format!("seed: many\n{VALID}");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn an_unknown_task_names_the_choices() {
    let text = VALID.replace("task: tagging", "task: parsing");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(
        error.contains("parsing") && error.contains("tagging"),
        "{error}"
    );
}

#[test]
fn data_needs_three_files_or_a_file_and_split() {
    let text = VALID.replace("  test: test.txt\n", "");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(
        error.contains("`train`, `dev` and `test` must all be given"),
        "{error}"
    );
    let text = VALID.replace(
        "  train: train.txt\n  dev: dev.txt\n  test: test.txt\n",
        "  file: all.txt\n",
    );
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("needs a split"), "{error}");
    let text = text + "  split: {train: [1, 8], dev: [9, 9], test: [10, 10]}\n";
    parse_spec_text(&text).unwrap();
}

#[test]
fn zero_threads_is_refused() {
    let text = format!("threads: 0\n{VALID}");
    assert!(parse_spec_text(&text).unwrap_err().contains("threads"));
}

#[test]
fn a_missing_file_names_the_field_and_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    std::fs::write(dir.path().join("train.txt"), "a/B\n").unwrap();
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, VALID).unwrap();
    let loaded = load_spec(&spec_path).unwrap();
    let error = check_files(&loaded).unwrap_err().to_string();
    assert!(error.contains("spec.yaml"), "{error}");
    assert!(error.contains("line 9, column 8"), "{error}");
    assert!(error.contains("data.dev"), "{error}");
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn downstream_classifiers_are_checked_by_name_and_value() {
    let text = format!("{VALID}downstream: {{classifiers: [knn, random-forest], trees: 5}}\n");
    let spec = parse_spec_text(&text).unwrap();
    let downstream = spec.downstream.expect("downstream section");
    assert_eq!(downstream.trees, 5);
    assert_eq!(downstream.classifiers.len(), 2);

    let text = format!("{VALID}downstream: {{classifiers: [naive-bayes]}}\n");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(
        error.contains("naive-bayes") && error.contains("line 11"),
        "{error}"
    );
    let text = format!("{VALID}downstream: {{classifiers: [knn, knn]}}\n");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("listed twice"), "{error}");
    let text = format!("{VALID}downstream: {{knn_k: 0}}\n");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("downstream.knn_k"), "{error}");
}

#[test]
fn downstream_classifiers_are_refused_for_regression() {
    let text =
        VALID.replace("task: tagging", "task: regression") + "downstream: {classifiers: [knn]}\n";
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("regression"), "{error}");
}

#[test]
fn store_settings_have_defaults_and_bad_values_name_the_field() {
    let spec = parse_spec_text(VALID).unwrap();
    assert_eq!(spec.store.dtype, crate::store::StorageDtype::F32);
    assert_eq!(spec.store.chunk_rows, 16_384);
    assert_eq!(spec.store.in_memory_mb, None, "absent: derived at run time");
    let f16 = format!("store: {{dtype: f16, chunk_rows: 500, in_memory_mb: 64}}\n{VALID}");
    let spec = parse_spec_text(&f16).unwrap();
    assert_eq!(spec.store.dtype, crate::store::StorageDtype::F16);
    assert_eq!(
        (spec.store.chunk_rows, spec.store.in_memory_mb),
        (500, Some(64))
    );
    for (bad, field) in [
        ("store: {chunk_rows: 0}", "store.chunk_rows"),
        ("store: {in_memory_mb: 1}", "store.in_memory_mb"),
        ("store: {dtype: f8}", "dtype"),
    ] {
        let message = parse_spec_text(&format!("{bad}\n{VALID}")).unwrap_err();
        assert!(message.contains(field), "{bad}: {message}");
    }
}

#[test]
fn layer_selector_options_have_defaults_and_bad_values_name_the_field() {
    let plain = format!("{VALID}selection:\n  layer_selector: {{delta: 2.0}}\n");
    let ls = parse_spec_text(&plain)
        .unwrap()
        .selection
        .layer_selector
        .unwrap();
    assert_eq!(ls.delta, 2.0);
    assert!(!ls.early_stop && ls.single_layers, "full report by default");
    let fast = format!(
        "{VALID}selection:\n  layer_selector: {{early_stop: true, single_layers: false}}\n"
    );
    let ls = parse_spec_text(&fast)
        .unwrap()
        .selection
        .layer_selector
        .unwrap();
    assert!(ls.early_stop && !ls.single_layers);
    for bad in ["early_stop: sometimes", "single_layer: false"] {
        let text = format!("{VALID}selection:\n  layer_selector: {{{bad}}}\n");
        let message = parse_spec_text(&text).unwrap_err();
        let field = bad.split(':').next().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
        assert!(message.contains("line 12"), "{bad}: {message}");
    }
}

#[test]
fn probe_precision_parses_and_bad_values_name_the_field() {
    let bf16 = format!("{VALID}probe: {{precision: bf16}}\n");
    let spec = parse_spec_text(&bf16).unwrap();
    assert_eq!(spec.probe.precision, crate::probe::Precision::Bf16);
    assert_eq!(
        parse_spec_text(VALID).unwrap().probe.precision,
        crate::probe::Precision::F32
    );
    // An unknown value: serde names it, the choices and the line.
    let error = parse_spec_text(&format!("{VALID}probe: {{precision: fp16}}\n")).unwrap_err();
    assert!(
        error.contains("fp16") && error.contains("bf16") && error.contains("line 11"),
        "{error}"
    );
    // A combination the probe cannot run is refused at parse time.
    let fista = format!("{VALID}probe: {{precision: bf16, solver: fista}}\n");
    let error = parse_spec_text(&fista).unwrap_err();
    assert!(
        error.contains("section `probe`") && error.contains("precision bf16"),
        "{error}"
    );
}

#[test]
fn threads_beyond_the_limit_are_refused_with_their_line() {
    let text = format!("{VALID}threads: 100000\n");
    let error = parse_spec_text(&text).unwrap_err();
    assert!(error.contains("field `threads`"), "{error}");
    assert!(error.contains("100000"), "{error}");
    assert!(error.contains("line 11"), "{error}");
    assert!(error.contains("Leave `threads` out"), "{error}");
    let limit = max_threads();
    assert!(limit >= MIN_THREAD_LIMIT);
    parse_spec_text(&format!("{VALID}threads: {limit}\n")).expect("the limit itself is fine");
    let over = format!("{VALID}threads: {}\n", limit + 1);
    assert!(parse_spec_text(&over).is_err(), "one past the limit");
}

#[test]
fn top_n_with_both_delta_and_target_is_refused() {
    let selection = "selection:\n  ranking: {selector: probeless}\n  top_n:\n";
    let both = format!("{VALID}{selection}    delta: 2.0\n    target: 50\n");
    let error = parse_spec_text(&both).unwrap_err();
    assert!(error.contains("selection.top_n"), "{error}");
    assert!(
        error.contains("`delta: 2`") && error.contains("`target: 50`"),
        "{error}"
    );
    assert!(error.contains("line 14"), "{error}");
    // Either one alone is fine, and delta defaults to the paper's 1%.
    let target = parse_spec_text(&format!("{VALID}{selection}    target: 50\n")).unwrap();
    let top_n = target.selection.top_n.unwrap();
    assert_eq!((top_n.target, top_n.delta), (Some(50), None));
    assert_eq!(top_n.delta(), 1.0);
    let delta = parse_spec_text(&format!("{VALID}{selection}    delta: 2.0\n")).unwrap();
    assert_eq!(delta.selection.top_n.unwrap().delta(), 2.0);
}

#[test]
fn zero_epochs_are_refused_with_their_line() {
    let error = parse_spec_text(&format!("{VALID}probe:\n  epochs: 0\n")).unwrap_err();
    assert!(error.contains("probe.epochs"), "{error}");
    assert!(error.contains("line 12"), "{error}");
    assert!(error.contains("at least 1"), "{error}");
    let error =
        parse_spec_text(&format!("{VALID}probe: {{solver: fista, max_iter: 0}}\n")).unwrap_err();
    assert!(error.contains("probe.max_iter"), "{error}");
    // Settings built in code go through the probe's own check.
    let settings = crate::probe::ProbeSettings {
        epochs: 0,
        ..Default::default()
    };
    assert!(settings.validate().is_err());
    parse_spec_text(&format!("{VALID}probe:\n  epochs: 1\n")).expect("one epoch is fine");
}

/// Real specs the parser's fuzz test mutates: every section and most
/// options appear in at least one.
const FUZZ_SEEDS: &[&str] = &[
    VALID,
    include_str!("../../../configs/quickstart.yaml"),
    include_str!("../../../configs/pos-wsj.yaml"),
    include_str!("../../../configs/compare-rankers-wsj.yaml"),
    include_str!("../../../configs/sentiment-rating.yaml"),
    include_str!("../../../configs/sentiment-movies.yaml"),
    "output: o\nmodel: {backend: b, path: m, params: {a: [1, {b: null}]}}\ndata:\n  task: tagging\n  \
     reader: {format: conll, word_column: 0, tag_column: 3, separator: tab}\n  file: f\n  \
     split: {train: [1, 8], dev: [9, 9], test: [10, 10]}\nthreads: 2\ncontrol_task: true\n\
     store: {dir: s, reuse: false, dtype: f16, chunk_rows: 10, in_memory_mb: 16}\n\
     probe: {solver: fista, max_iter: 5, tolerance: 0.1, epochs: 1}\n\
     selection:\n  layer_selector: {delta: 1, early_stop: true}\n  clustering: {selector: correlation, params: {threshold: 0.3}}\n  \
     ranking: {selector: probeless}\n  top_n: {sizes: [1, 2]}\n  compare: [{selector: random}]\n\
     downstream: {classifiers: [knn], knn_k: 3}\n",
];

/// Arbitrary bytes and mutated real specs give a spec or an error, never a
/// panic (see crate::data::fuzz for the generator and its settings).
#[test]
fn spec_parser_never_panics() {
    use crate::data::fuzz::{check, describe, input};
    check("spec_parser_never_panics", |rng, described| {
        let bytes = input(rng, FUZZ_SEEDS);
        *described = describe(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        if let Err(message) = parse_spec_text(&text) {
            assert!(!message.is_empty());
        }
    });
}

#[test]
fn the_fuzz_seeds_are_valid_specs() {
    for seed in FUZZ_SEEDS {
        if let Err(error) = parse_spec_text(seed) {
            panic!("{error}\n{seed}");
        }
    }
}
