//! The `onnx` backend on the real int8 MiniLM export, compared with the
//! candle backend's fp32 states, plus its error messages.
//!
//! Needs `scripts/fetch-assets.sh onnxruntime onnx-minilm minilm wsj`;
//! missing assets fail with that command (never a silent skip).

use std::path::{Path, PathBuf};

use prost::Message;
use sieve_backend_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto,
    ELEM_FLOAT, ELEM_INT64,
};
use sieve_backend_onnx::HiddenSource;
use sieve_core::abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncodedRows, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets")
}

/// An asset path, or a failure that says how to get it.
fn asset(relative: &str, fetch: &str) -> PathBuf {
    let path = assets().join(relative);
    assert!(
        path.exists(),
        "missing {}: run `scripts/fetch-assets.sh {fetch}` in the workspace root",
        path.display()
    );
    path
}

fn runtime() -> PathBuf {
    asset("onnxruntime/libonnxruntime.so", "onnxruntime")
}

fn onnx_model() -> PathBuf {
    asset("minilm-int8-onnx/model.onnx", "onnx-minilm")
}

fn tokenizer_dir() -> PathBuf {
    asset("all-MiniLM-L6-v2", "minilm")
}

fn onnx_params(model: &Path) -> String {
    serde_json::json!({
        "model": model,
        "tokenizer": tokenizer_dir(),
        "runtime": runtime(),
        "threads": 2,
    })
    .to_string()
}

/// The first `n` sentences of the WSJ dev split, as words.
fn wsj_sentences(n: usize) -> Vec<TextUnit> {
    let path = asset("wsj/dev.txt", "wsj");
    let text = std::fs::read_to_string(&path).expect("read dev.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|line| {
            let words: Vec<&str> = line
                .split_whitespace()
                .map(|t| t.rsplit_once('/').map_or(t, |(w, _)| w))
                .collect();
            TextUnit::words(&words)
        })
        .collect()
}

fn word_request(units: Vec<TextUnit>, last_layer: u32) -> EncodeRequest {
    EncodeRequest {
        units: RVec::from(units),
        level: RowLevel::Word,
        subword_pooling: SubwordPooling::Last,
        sentence_pooling: SentencePooling::Cls,
        last_layer,
        batch_size: 4,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Minimum cosine per layer between two encodings of the same request.
fn min_cosines(a: &EncodedRows, b: &EncodedRows) -> Vec<f64> {
    assert_eq!((a.rows, a.layers, a.hidden), (b.rows, b.layers, b.hidden));
    let (layers, hidden) = (a.layers as usize, a.hidden as usize);
    let mut mins = vec![f64::INFINITY; layers];
    for row in 0..a.rows as usize {
        for (layer, min) in mins.iter_mut().enumerate() {
            let at = (row * layers + layer) * hidden;
            *min = min.min(cosine(
                &a.values[at..at + hidden],
                &b.values[at..at + hidden],
            ));
        }
    }
    mins
}

#[test]
fn int8_minilm_matches_candle_fp32_at_every_layer() {
    let onnx = sieve_backend_onnx::open(&onnx_params(&onnx_model())).expect("open onnx");
    let names = onnx.hidden_state_names();
    println!("hidden states ({:?}): {:?}", names.source, names.names);
    assert_eq!(names.source, HiddenSource::LayerNorms);
    let description = onnx.describe();
    assert_eq!((description.num_layers, description.hidden_size), (6, 384));

    let candle_params = serde_json::json!({"model": tokenizer_dir(), "threads": 2}).to_string();
    let candle = sieve_backend_candle::open(&candle_params).expect("open candle");

    let request = word_request(wsj_sentences(6), 6);
    let ours = onnx.encode(&request).expect("onnx encode");
    let theirs = candle.encode(&request).expect("candle encode");
    assert_eq!(ours.layers, 7, "7 hidden states per token");
    assert_eq!(ours.rows_per_unit, theirs.rows_per_unit);
    assert_eq!(ours.subword_tokens, theirs.subword_tokens);
    let mins = min_cosines(&ours, &theirs);
    println!(
        "min cosine per layer, int8 onnx vs fp32 candle ({} words): {mins:.4?}",
        ours.rows
    );
    for (layer, min) in mins.iter().enumerate() {
        assert!(*min >= 0.99, "layer {layer}: min cosine {min:.4} < 0.99");
    }

    // Truncated: layers 0..=2 from a pruned graph equal the full pass's.
    let (kept, all) = onnx.node_counts(2);
    println!("last_layer 2 runs {kept} of {all} nodes");
    assert!(kept < all * 2 / 3, "pruning kept {kept} of {all} nodes");
    let short = onnx
        .encode(&word_request(wsj_sentences(6), 2))
        .expect("truncated");
    assert_eq!(short.layers, 3);
    let (layers, hidden) = (7usize, 384usize);
    for row in 0..short.rows as usize {
        for layer in 0..3 {
            let a = &short.values[(row * 3 + layer) * hidden..][..hidden];
            let b = &ours.values[(row * layers + layer) * hidden..][..hidden];
            // Other graph, other fusions: equal up to float rounding.
            assert!(cosine(a, b) > 0.9999, "row {row} layer {layer}");
        }
    }
}

#[test]
fn random_bytes_are_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("junk.onnx");
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, junk).expect("write");
    let message = sieve_backend_onnx::open(&onnx_params(&path)).expect_err("junk must fail");
    println!("{message}");
    assert!(message.contains("not a valid ONNX model"), "{message}");
    assert!(message.contains("junk.onnx"), "{message}");
}

/// input_ids -> Cast(float) -> output: a valid model with no encoder.
fn cast_model() -> Vec<u8> {
    let int_input = |name: &str| ValueInfoProto::tensor(name, ELEM_INT64, &["batch", "seq"]);
    ModelProto {
        ir_version: 8,
        producer_name: "sieve-test".into(),
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["input_ids".into()],
                output: vec!["output".into()],
                name: "cast".into(),
                op_type: "Cast".into(),
                attribute: vec![AttributeProto {
                    name: "to".into(),
                    i: i64::from(ELEM_FLOAT),
                    r#type: 2,
                }],
                domain: String::new(),
            }],
            name: "cast".into(),
            input: vec![int_input("input_ids"), int_input("attention_mask")],
            output: vec![ValueInfoProto::tensor(
                "output",
                ELEM_FLOAT,
                &["batch", "seq"],
            )],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
    }
    .encode_to_vec()
}

#[test]
fn a_graph_without_layers_asks_for_hidden_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cast.onnx");
    std::fs::write(&path, cast_model()).expect("write");
    let message = sieve_backend_onnx::open(&onnx_params(&path)).expect_err("no layers");
    println!("{message}");
    assert!(message.contains("no hidden states found"), "{message}");
    assert!(message.contains("`hidden_states`"), "{message}");
}

#[test]
fn a_missing_runtime_library_is_named() {
    let params = serde_json::json!({
        "model": onnx_model(),
        "tokenizer": tokenizer_dir(),
        "runtime": "/no/such/dir/libonnxruntime.so",
    })
    .to_string();
    let message = sieve_backend_onnx::open(&params).expect_err("missing library");
    println!("{message}");
    assert!(
        message.contains("/no/such/dir/libonnxruntime.so"),
        "{message}"
    );
    assert!(message.contains("fetch-assets.sh onnxruntime"), "{message}");
}

#[test]
fn unknown_parameters_are_refused() {
    let params = serde_json::json!({"model": onnx_model(), "layers": 3}).to_string();
    let message = sieve_backend_onnx::open(&params).expect_err("unknown parameter");
    assert!(
        message.contains("layers") && message.contains("known:"),
        "{message}"
    );
}
