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
    assert_eq!(spec.store.in_memory_mb, 2048);
    let f16 = format!("store: {{dtype: f16, chunk_rows: 500, in_memory_mb: 64}}\n{VALID}");
    let spec = parse_spec_text(&f16).unwrap();
    assert_eq!(spec.store.dtype, crate::store::StorageDtype::F16);
    assert_eq!((spec.store.chunk_rows, spec.store.in_memory_mb), (500, 64));
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
