//! `sieve export` and `sieve predict` on the WSJ selection: the slim model
//! labels the test words exactly as the run's selected-neuron probe did,
//! and a tampered model folder is refused.

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

/// (words, gold tags) of each sentence of a word/TAG file.
fn word_tag_sentences(path: &Path) -> Vec<(Vec<String>, Vec<String>)> {
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

#[test]
fn exported_wsj_model_predicts_the_runs_probe_labels_and_refuses_tampering() {
    let _store = store_lock();
    let test_file = asset("wsj/test.txt");
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
    assert!(slim.join("encoder/model.safetensors").is_file());

    // A second export into the same folder needs --force.
    let again = sieve(
        &["export", run_dir.to_str().unwrap(), slim.to_str().unwrap()],
        &[],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));

    let sentences = word_tag_sentences(&test_file);
    let words: Vec<String> = sentences.iter().map(|(w, _)| w.join(" ")).collect();
    let input = out.path().join("test-words.txt");
    std::fs::write(&input, words.join("\n") + "\n").unwrap();
    let output = sieve(
        &["predict", slim.to_str().unwrap(), input.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let predicted: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        predicted.len(),
        sentences.len(),
        "one output line per sentence"
    );
    let (mut correct, mut total) = (0usize, 0usize);
    for (line, (words, gold)) in predicted.iter().zip(&sentences) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(tokens.len(), words.len(), "{line}");
        for ((token, word), tag) in tokens.iter().zip(words).zip(gold) {
            let cut = token.rfind('/').expect("word/TAG output");
            assert_eq!(&token[..cut], word);
            correct += usize::from(&token[cut + 1..] == tag);
            total += 1;
        }
    }
    let accuracy = correct as f64 / total as f64;
    assert!(
        (accuracy - selection_test).abs() < 1e-9,
        "predict's accuracy {accuracy} vs the run's selection.test {selection_test}"
    );

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
