//! `sieve export`, `sieve predict` and `sieve bench --slim` on the WSJ
//! selection: the exported encoder is truncated after the selected layer,
//! the slim model labels the test words exactly as the run's
//! selected-neuron probe did, the benchmark's full model scores as the
//! run's oracle, and a tampered model folder is refused.

use std::path::Path;

use sieve_e2e::*;

/// The shipped WSJ spec without the control task and the downstream
/// classifiers (not needed here; they only cost time).
fn lean_wsj_spec(out: &Path) -> std::path::PathBuf {
    let spec = shipped_spec("pos-wsj.yaml", out, &shared_store());
    let text = std::fs::read_to_string(&spec).unwrap();
    let mut lines = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        let top_level = !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty();
        if top_level {
            skipping = line.starts_with("downstream:") || line.starts_with("control_task:");
        }
        if !skipping {
            lines.push(line);
        }
    }
    write_spec(out, "pos-wsj-lean.yaml", &(lines.join("\n") + "\n"))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Tensor names in a safetensors file's header (8-byte length, JSON).
fn safetensors_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect()
}

/// (words, gold tags) of each sentence.
type TaggedSentences = Vec<(Vec<String>, Vec<String>)>;

/// (words, gold tags) of each sentence of a word/TAG file.
fn word_tag_sentences(path: &Path) -> TaggedSentences {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            line.split_whitespace()
                .map(|token| {
                    let cut = token.rfind('/').expect("word/TAG token");
                    (token[..cut].to_string(), token[cut + 1..].to_string())
                })
                .unzip()
        })
        .collect()
}

/// `sieve predict` on the test words: its accuracy equals the run's
/// `selection.test`. Returns the input file.
fn predict_matches_the_run(dir: &Path, slim: &Path, selection_test: f64) -> std::path::PathBuf {
    let (input, sentences) = test_words(dir);
    let output = sieve(
        &["predict", slim.to_str().unwrap(), input.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let accuracy = predicted_accuracy(&String::from_utf8(output.stdout).unwrap(), &sentences);
    assert!(
        (accuracy - selection_test).abs() < 1e-9,
        "predict's accuracy {accuracy} vs the run's selection.test {selection_test}"
    );
    input
}

/// `sieve bench --slim MODEL --copies 1`: what it printed and its JSON.
fn bench_slim(dir: &Path, slim: &Path) -> (String, serde_json::Value) {
    let json = dir.join("bench.json");
    let output = sieve(
        &[
            "bench",
            "--slim",
            slim.to_str().unwrap(),
            "--copies",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let bench = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), bench)
}

#[test]
fn exported_wsj_model_predicts_the_runs_probe_labels_and_refuses_tampering() {
    let _store = store_lock();
    asset("wsj/test.txt");
    let out = tempfile::tempdir().unwrap();
    let spec = lean_wsj_spec(out.path());
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let run_dir = out.path().join("run");
    let report = read_report(&run_dir);
    let selection_test = report["selection"]["test"]
        .as_f64()
        .expect("selection.test");

    let slim = out.path().join("slim");
    let output = sieve(
        &["export", run_dir.to_str().unwrap(), slim.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slim.join("manifest.json")).unwrap())
            .unwrap();
    let neurons = manifest["neurons"].as_array().unwrap();
    assert_eq!(neurons, report["selection"]["neurons"].as_array().unwrap());
    let last_layer = neurons.iter().map(|n| n[0].as_u64().unwrap()).max();
    assert_eq!(manifest["last_layer"].as_u64(), last_layer);
    let last_layer = last_layer.expect("neurons") as usize;
    assert_eq!(manifest["kept_layers"].as_u64(), Some(last_layer as u64));
    assert!(slim.join("oracle.json").is_file(), "the oracle probe");

    // The encoder is truncated: only the embeddings and layers < L remain,
    // and its config says so.
    let weights = slim.join("encoder/model.safetensors");
    let source = asset("all-MiniLM-L6-v2/model.safetensors");
    let (size, source_size) = (file_size(&weights), file_size(&source));
    assert!(
        size < source_size,
        "truncated weights {size} bytes, source {source_size}"
    );
    let names = safetensors_names(&weights);
    assert!(names.iter().any(|n| n.starts_with("embeddings.")));
    for layer in 0..6 {
        let present = names
            .iter()
            .any(|n| n.starts_with(&format!("encoder.layer.{layer}.")));
        assert_eq!(present, layer < last_layer, "encoder layer {layer}");
    }
    assert!(!names.iter().any(|n| n.starts_with("pooler.")));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slim.join("encoder/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["num_hidden_layers"].as_u64(),
        Some(last_layer as u64)
    );

    // A second export into the same folder needs --force.
    let again = sieve(
        &["export", run_dir.to_str().unwrap(), slim.to_str().unwrap()],
        &[],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));

    let input = predict_matches_the_run(out.path(), &slim, selection_test);

    // JSON output: one object per line with words and tags.
    let output = sieve(
        &[
            "predict",
            slim.to_str().unwrap(),
            input.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        first["words"].as_array().unwrap().len(),
        first["tags"].as_array().unwrap().len()
    );

    // The benchmark against the full model and the oracle probe: both
    // throughputs printed, and on the run's test split (one copy, batched
    // as the run batched it) both accuracies equal the run's scores, so the
    // oracle really is the run's. No timing is asserted.
    let (printed, bench) = bench_slim(out.path(), &slim);
    assert!(
        printed.contains("| slim |") && printed.contains("| full + oracle |"),
        "{printed}"
    );
    assert_eq!(bench["words"], 2504, "the test split's words, once");
    for model in ["slim", "full"] {
        assert!(bench[model]["words_per_second"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        bench["slim"]["last_layer"].as_u64(),
        Some(last_layer as u64)
    );
    assert_eq!(bench["full"]["last_layer"], 6);
    assert_eq!(bench["full"]["features"], 7 * 384);
    let slim_accuracy = bench["slim"]["accuracy"].as_f64().unwrap();
    assert!(
        (slim_accuracy - selection_test).abs() < 1e-9,
        "bench's slim accuracy {slim_accuracy} vs the run's selection.test {selection_test}"
    );
    let oracle_test = report["oracle"]["test"].as_f64().expect("oracle.test");
    let full_accuracy = bench["full"]["accuracy"].as_f64().unwrap();
    assert!(
        (full_accuracy - oracle_test).abs() < 1e-9,
        "bench's oracle accuracy {full_accuracy} vs the run's oracle.test {oracle_test}"
    );

    // One flipped byte in the classifier: refused, naming the file.
    let classifier = slim.join("classifier.json");
    let mut bytes = std::fs::read(&classifier).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&classifier, bytes).unwrap();
    let output = sieve(
        &["predict", slim.to_str().unwrap(), input.to_str().unwrap()],
        &[],
    );
    assert!(!output.status.success(), "a tampered model must be refused");
    let message = text(&output);
    assert!(
        message.contains("classifier.json") && message.contains("re-export"),
        "{message}"
    );
}

/// Words of the WSJ test file, one sentence per line, written to `dir`;
/// returns the file and the sentences with their gold tags.
fn test_words(dir: &Path) -> (std::path::PathBuf, TaggedSentences) {
    let sentences = word_tag_sentences(&asset("wsj/test.txt"));
    let words: Vec<String> = sentences.iter().map(|(w, _)| w.join(" ")).collect();
    let input = dir.join("test-words.txt");
    std::fs::write(&input, words.join("\n") + "\n").unwrap();
    (input, sentences)
}

/// Accuracy of `predict`'s text output against the gold tags.
fn predicted_accuracy(stdout: &str, sentences: &[(Vec<String>, Vec<String>)]) -> f64 {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), sentences.len(), "one output line per sentence");
    let (mut correct, mut total) = (0usize, 0usize);
    for (line, (words, gold)) in lines.iter().zip(sentences) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(tokens.len(), words.len(), "{line}");
        for ((token, word), tag) in tokens.iter().zip(words).zip(gold) {
            let cut = token.rfind('/').expect("word/TAG output");
            assert_eq!(&token[..cut], word);
            correct += usize::from(&token[cut + 1..] == tag);
            total += 1;
        }
    }
    correct as f64 / total as f64
}

/// The same through the onnx backend (configs/pos-wsj-onnx-slim.yaml):
/// the export saves the ONNX graph pruned after the selected layer, and
/// the onnx plugin runs it to the run's labels.
#[test]
fn exported_onnx_model_is_a_pruned_graph_that_predicts_the_runs_probe_labels() {
    let _store = store_lock();
    let source = root().join("assets/minilm-int8-onnx/model.onnx");
    assert!(
        source.is_file()
            && root()
                .join("assets/onnxruntime/libonnxruntime.so")
                .is_file(),
        "run `scripts/fetch-assets.sh onnx-minilm onnxruntime` (or `make test`) first"
    );
    let out = tempfile::tempdir().unwrap();
    let spec = shipped_spec("pos-wsj-onnx-slim.yaml", out.path(), &shared_store());
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let run_dir = out.path().join("run");
    let report = read_report(&run_dir);
    assert_eq!(report["model"]["backend"], "onnx");
    let selection_test = report["selection"]["test"].as_f64().unwrap();

    let slim = out.path().join("slim");
    let output = sieve(
        &["export", run_dir.to_str().unwrap(), slim.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slim.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["backend"], "onnx");
    assert_eq!(manifest["encoder_model"], "encoder/model.onnx");
    let last_layer = manifest["last_layer"].as_u64().unwrap();
    assert!(last_layer < 6, "the selection should not need every layer");
    // The plugin takes the pruned graph's outputs as the hidden states.
    let hidden_states = manifest["backend_params"]["hidden_states"]
        .as_array()
        .expect("hidden_states in backend_params");
    assert_eq!(hidden_states.len() as u64, last_layer + 1);
    assert!(manifest["backend_params"].get("tokenizer").is_none());
    assert!(slim.join("encoder/tokenizer.json").is_file());
    let pruned = file_size(&slim.join("encoder/model.onnx"));
    let full = file_size(&source);
    assert!(pruned < full, "pruned graph {pruned} bytes, source {full}");

    predict_matches_the_run(out.path(), &slim, selection_test);

    // The benchmark runs the pruned graph and the run's full graph.
    let (_, bench) = bench_slim(out.path(), &slim);
    assert_eq!(bench["backend"], "onnx");
    assert_eq!(bench["full"]["last_layer"], 6);
    let full_accuracy = bench["full"]["accuracy"].as_f64().unwrap();
    let oracle_test = report["oracle"]["test"].as_f64().unwrap();
    assert!(
        (full_accuracy - oracle_test).abs() < 1e-9,
        "bench's oracle accuracy {full_accuracy} vs the run's oracle.test {oracle_test}"
    );
}
