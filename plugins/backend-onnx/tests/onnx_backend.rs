//! The `onnx` backend on the real int8 MiniLM export, compared with the
//! candle backend's fp32 states; truncated graphs against the full one; toy
//! exports built here for the other input and output layouts; and the
//! backend's error messages.
//!
//! Needs `scripts/fetch-assets.sh onnxruntime onnx-minilm minilm wsj`;
//! missing assets fail with that command (never a silent skip).

use std::path::{Path, PathBuf};

use prost::Message;
use sieve_backend_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto,
    ELEM_FLOAT, ELEM_INT32, ELEM_INT64,
};
use sieve_backend_onnx::{HiddenSource, IdType};
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

/// The first `n` sentences of a WSJ split, as words.
fn wsj_sentences(split: &str, n: usize) -> Vec<TextUnit> {
    let path = asset(&format!("wsj/{split}.txt"), "wsj");
    let text = std::fs::read_to_string(&path).expect("read the WSJ split");
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
        batch_size: 32,
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

/// Row `row`, hidden state `layer` of an encoding.
fn state(rows: &EncodedRows, row: usize, layer: usize) -> &[f32] {
    let (layers, hidden) = (rows.layers as usize, rows.hidden as usize);
    &rows.values[(row * layers + layer) * hidden..][..hidden]
}

/// Minimum and mean cosine per layer between two encodings of the same
/// request.
fn cosines_per_layer(a: &EncodedRows, b: &EncodedRows) -> Vec<(f64, f64)> {
    assert_eq!((a.rows, a.layers, a.hidden), (b.rows, b.layers, b.hidden));
    (0..a.layers as usize)
        .map(|layer| {
            let all: Vec<f64> = (0..a.rows as usize)
                .map(|row| cosine(state(a, row, layer), state(b, row, layer)))
                .collect();
            let min = all.iter().copied().fold(f64::INFINITY, f64::min);
            (min, all.iter().sum::<f64>() / all.len() as f64)
        })
        .collect()
}

#[test]
fn int8_minilm_matches_candle_fp32_at_every_layer() {
    let onnx = sieve_backend_onnx::open(&onnx_params(&onnx_model())).expect("open onnx");
    let names = onnx.hidden_state_names();
    println!("hidden states ({:?}): {:?}", names.source, names.names);
    assert_eq!(names.source, HiddenSource::LayerNorms);
    let description = onnx.describe();
    assert_eq!((description.num_layers, description.hidden_size), (6, 384));
    assert_eq!(onnx.inputs().input_ids.1, IdType::I64);
    assert!(onnx.inputs().token_type_ids.is_some());

    let candle_params = serde_json::json!({"model": tokenizer_dir(), "threads": 2}).to_string();
    let candle = sieve_backend_candle::open(&candle_params).expect("open candle");

    // The whole dev split: every word, at every hidden state.
    let request = word_request(wsj_sentences("dev", 100), 6);
    let ours = onnx.encode(&request).expect("onnx encode");
    let theirs = candle.encode(&request).expect("candle encode");
    assert_eq!(ours.layers, 7, "7 hidden states per token");
    assert_eq!(ours.hidden, 384);
    assert_eq!(ours.rows_per_unit, theirs.rows_per_unit);
    assert_eq!(ours.subword_tokens, theirs.subword_tokens);
    let cosines = cosines_per_layer(&ours, &theirs);
    println!(
        "cosine per layer (min, mean), int8 onnx vs fp32 candle, {} words: {cosines:.4?}",
        ours.rows
    );
    for (layer, (min, _)) in cosines.iter().enumerate() {
        assert!(*min >= 0.99, "layer {layer}: min cosine {min:.4} < 0.99");
    }
}

#[test]
fn truncated_passes_equal_the_full_pass() {
    let onnx = sieve_backend_onnx::open(&onnx_params(&onnx_model())).expect("open onnx");
    let full = onnx
        .encode(&word_request(wsj_sentences("dev", 24), 6))
        .expect("full pass");
    let mut previous_nodes = 0;
    for last_layer in 0..6u32 {
        let (kept, all) = onnx.node_counts(last_layer as usize);
        println!("hidden states 0..={last_layer} run {kept} of {all} nodes");
        assert!(
            kept > previous_nodes && kept < all,
            "L={last_layer}: {kept} of {all} nodes"
        );
        previous_nodes = kept;
        let short = onnx
            .encode(&word_request(wsj_sentences("dev", 24), last_layer))
            .expect("truncated pass");
        assert_eq!(short.layers, last_layer + 1);
        assert_eq!((short.rows, short.hidden), (full.rows, full.hidden));
        let mut largest = 0f32;
        for row in 0..short.rows as usize {
            for layer in 0..=last_layer as usize {
                let (a, b) = (state(&short, row, layer), state(&full, row, layer));
                let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs());
                largest = diff.fold(largest, f32::max);
            }
        }
        println!("  largest difference to the full pass: {largest:e}");
        // Measured: bit for bit equal; another graph could fuse differently.
        assert!(largest < 1e-4, "L={last_layer}: differs by {largest}");
    }
}

/// What `sieve export` saves: the graph cut after hidden state L, written
/// to a file, reopened with its outputs named as the hidden states (one
/// name for L = 0: the embeddings only). It runs L layers and gives the
/// full pass's states.
#[test]
fn a_saved_graph_cut_after_a_layer_runs_as_a_model_of_its_own() {
    let full_model = onnx_model();
    let onnx = sieve_backend_onnx::open(&onnx_params(&full_model)).expect("open onnx");
    let units = || wsj_sentences("dev", 12);
    let full = onnx.encode(&word_request(units(), 6)).expect("full pass");
    let bytes = std::fs::read(&full_model).expect("read the model");
    let model = sieve_backend_onnx::proto::OnnxModel::parse(bytes.clone()).expect("parse");
    let hidden = onnx.hidden_state_names();
    let dir = tempfile::tempdir().expect("temp dir");
    for last_layer in [0usize, 2] {
        let pruned = sieve_backend_onnx::graph::truncated_model(&model, hidden, last_layer);
        assert!(pruned.len() < bytes.len());
        let path = dir.path().join(format!("cut-{last_layer}.onnx"));
        std::fs::write(&path, pruned).expect("write the cut graph");
        let params = serde_json::json!({
            "model": path,
            "tokenizer": tokenizer_dir(),
            "runtime": runtime(),
            "threads": 2,
            "hidden_states": &hidden.names[..=last_layer],
        });
        let cut = sieve_backend_onnx::open(&params.to_string()).expect("open the cut graph");
        assert_eq!(cut.describe().num_layers as usize, last_layer);
        let short = cut
            .encode(&word_request(units(), last_layer as u32))
            .expect("encode with the cut graph");
        assert_eq!((short.rows, short.hidden), (full.rows, full.hidden));
        let mut largest = 0f32;
        for row in 0..short.rows as usize {
            for layer in 0..=last_layer {
                let (a, b) = (state(&short, row, layer), state(&full, row, layer));
                let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs());
                largest = diff.fold(largest, f32::max);
            }
        }
        assert!(largest < 1e-4, "L={last_layer}: differs by {largest}");
    }
}

// ---------------------------------------------------------------------------
// Toy exports: a tiny post-LN "encoder" (hidden size 4) made of standard ONNX
// operators, to check the layouts the real model does not have.

const TOY_HIDDEN: [f32; 4] = [1.0, 2.0, 3.0, 4.0];

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: output.to_string(),
        op_type: op.to_string(),
        attribute,
        domain: String::new(),
    }
}

fn attribute(name: &str, r#type: i32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type,
        ..Default::default()
    }
}

/// `Cast(to = FLOAT)`.
fn cast(input: &str, output: &str) -> NodeProto {
    let to = AttributeProto {
        i: i64::from(ELEM_FLOAT),
        ..attribute("to", 2)
    };
    node("Cast", &[input], output, vec![to])
}

fn constant_floats(output: &str, values: &[f32]) -> NodeProto {
    let value = AttributeProto {
        floats: values.to_vec(),
        ..attribute("value_floats", 6)
    };
    node("Constant", &[], output, vec![value])
}

fn constant_ints(output: &str, values: &[i64]) -> NodeProto {
    let value = AttributeProto {
        ints: values.to_vec(),
        ..attribute("value_ints", 7)
    };
    node("Constant", &[], output, vec![value])
}

/// `LayerNormalization` over the last axis (scale 1, shift 0): one node,
/// or spelled out the way exports below opset 17 write it.
fn layer_norm(input: &str, output: &str, decomposed: bool) -> Vec<NodeProto> {
    if !decomposed {
        return vec![node("LayerNormalization", &[input, "ones"], output, vec![])];
    }
    let part = |p: &str| format!("{output}_{p}");
    let axes = AttributeProto {
        ints: vec![-1],
        ..attribute("axes", 7)
    };
    vec![
        node("ReduceMean", &[input], &part("mean"), vec![axes.clone()]),
        node("Sub", &[input, &part("mean")], &part("centred"), vec![]),
        node("Pow", &[&part("centred"), "two"], &part("squared"), vec![]),
        node(
            "ReduceMean",
            &[&part("squared")],
            &part("variance"),
            vec![axes],
        ),
        node(
            "Add",
            &[&part("variance"), "epsilon"],
            &part("shifted"),
            vec![],
        ),
        node("Sqrt", &[&part("shifted")], &part("std"), vec![]),
        node(
            "Div",
            &[&part("centred"), &part("std")],
            &part("normed"),
            vec![],
        ),
        node("Mul", &[&part("normed"), "ones"], &part("scaled"), vec![]),
        node("Add", &[&part("scaled"), "zeros"], output, vec![]),
    ]
}

/// Embeddings `LN((id + mask) * w)`, then per layer
/// `LN(LN(h + w) * w)`: 1 + 2 per layer layer norms, like BERT.
/// Hidden state `l` is named `hidden(l)`; the graph outputs are `outputs`.
/// `decomposed`: an opset 14 export without the LayerNormalization op.
fn toy_encoder(
    id_type: i32,
    layers: usize,
    decomposed: bool,
    hidden: impl Fn(usize) -> String,
    outputs: &[String],
) -> Vec<u8> {
    let mut nodes = vec![
        constant_ints("axes", &[-1]),
        constant_floats("w", &TOY_HIDDEN),
        constant_floats("ones", &[1.0; 4]),
        constant_floats("zeros", &[0.0; 4]),
        constant_floats("two", &[2.0]),
        constant_floats("epsilon", &[1e-5]),
        cast("input_ids", "ids_f"),
        cast("attention_mask", "mask_f"),
        node("Add", &["ids_f", "mask_f"], "x", vec![]),
        node("Unsqueeze", &["x", "axes"], "x3", vec![]),
        node("Mul", &["x3", "w"], "embedded", vec![]),
    ];
    nodes.extend(layer_norm("embedded", &hidden(0), decomposed));
    for layer in 1..=layers {
        let name = |part: &str| format!("layer{layer}_{part}");
        let before = hidden(layer - 1);
        nodes.push(node("Add", &[&before, "w"], &name("attention"), vec![]));
        nodes.extend(layer_norm(
            &name("attention"),
            &name("attention_norm"),
            decomposed,
        ));
        nodes.push(node(
            "Mul",
            &[&name("attention_norm"), "w"],
            &name("ffn"),
            vec![],
        ));
        nodes.extend(layer_norm(&name("ffn"), &hidden(layer), decomposed));
    }
    let ids = |name: &str| ValueInfoProto::tensor(name, id_type, &["batch", "sequence"]);
    ModelProto {
        ir_version: 8,
        producer_name: "sieve-test".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "toy".into(),
            input: vec![ids("input_ids"), ids("attention_mask")],
            output: outputs
                .iter()
                .map(|o| ValueInfoProto::tensor(o, ELEM_FLOAT, &["batch", "sequence", "4"]))
                .collect(),
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: if decomposed { 14 } else { 17 },
        }],
    }
    .encode_to_vec()
}

/// A folder with `model.onnx` and a WordPiece vocab.txt beside it (the
/// backend's default tokenizer folder).
fn toy_folder(model: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.onnx"), model).expect("write model");
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\n##s\n";
    std::fs::write(dir.path().join("vocab.txt"), vocab).expect("write vocab");
    dir
}

fn toy_params(dir: &Path, extra: serde_json::Value) -> String {
    let mut params = serde_json::json!({
        "model": dir.join("model.onnx"),
        "runtime": runtime(),
        "threads": 1,
    });
    let object = params.as_object_mut().expect("object");
    for (key, value) in extra.as_object().expect("object") {
        object.insert(key.clone(), value.clone());
    }
    params.to_string()
}

fn toy_request(last_layer: u32) -> EncodeRequest {
    let units = vec![
        TextUnit::words(&["the", "cats", "sat"]),
        TextUnit::words(&["cat"]),
    ];
    word_request(units, last_layer)
}

/// The embeddings' LayerNorm of `(id + 1) * w` is the same for every token:
/// `(w - mean) / std`.
fn toy_layer0() -> Vec<f32> {
    let mean = TOY_HIDDEN.iter().sum::<f32>() / 4.0;
    let var = TOY_HIDDEN.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 4.0;
    TOY_HIDDEN.iter().map(|x| (x - mean) / var.sqrt()).collect()
}

fn assert_close(a: &[f32], b: &[f32]) {
    let close = a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
    assert!(close, "{a:?} != {b:?}");
}

#[test]
fn an_int32_export_without_token_types_runs_every_layer() {
    let hidden = |l: usize| format!("norm_{l}");
    let model = toy_encoder(ELEM_INT32, 2, false, hidden, &[hidden(2)]);
    let dir = toy_folder(&model);
    let backend =
        sieve_backend_onnx::open(&toy_params(dir.path(), serde_json::json!({}))).expect("open");
    assert_eq!(backend.inputs().input_ids.1, IdType::I32);
    assert_eq!(backend.inputs().token_type_ids, None);
    assert_eq!(
        backend.hidden_state_names().source,
        HiddenSource::LayerNorms
    );
    assert_eq!(
        backend.hidden_state_names().names,
        ["norm_0", "norm_1", "norm_2"]
    );
    let description = backend.describe();
    assert_eq!((description.num_layers, description.hidden_size), (2, 4));

    let full = backend.encode(&toy_request(2)).expect("encode");
    assert_eq!((full.rows, full.layers, full.hidden), (4, 3, 4));
    assert_eq!(full.rows_per_unit.as_slice(), &[3, 1]);
    assert_eq!(full.subword_tokens, 5, "the cat ##s sat | cat");
    for row in 0..4 {
        assert_close(state(&full, row, 0), &toy_layer0());
    }
    let short = backend.encode(&toy_request(1)).expect("truncated");
    assert_eq!(short.layers, 2);
    for row in 0..4 {
        for layer in 0..2 {
            assert_close(state(&short, row, layer), state(&full, row, layer));
        }
    }
}

#[test]
fn an_opset14_export_with_spelled_out_layer_norms_is_understood() {
    let hidden = |l: usize| format!("norm_{l}");
    let model = toy_encoder(ELEM_INT64, 2, true, hidden, &[hidden(2)]);
    let dir = toy_folder(&model);
    let backend =
        sieve_backend_onnx::open(&toy_params(dir.path(), serde_json::json!({}))).expect("open");
    let names = backend.hidden_state_names();
    assert_eq!(names.source, HiddenSource::LayerNorms);
    assert_eq!(names.names, ["norm_0", "norm_1", "norm_2"]);
    let full = backend.encode(&toy_request(2)).expect("encode");
    assert_eq!((full.rows, full.layers, full.hidden), (4, 3, 4));
    for row in 0..4 {
        assert_close(state(&full, row, 0), &toy_layer0());
    }
    let short = backend.encode(&toy_request(0)).expect("truncated");
    assert_eq!(short.layers, 1);
    assert_close(state(&short, 2, 0), state(&full, 2, 0));
}

#[test]
fn an_export_with_every_hidden_state_as_output_is_read_as_it_is() {
    let hidden = |l: usize| format!("hidden_states.{l}");
    let outputs: Vec<String> = (0..=3).map(hidden).collect();
    let model = toy_encoder(ELEM_INT64, 3, false, hidden, &outputs);
    let dir = toy_folder(&model);
    let backend =
        sieve_backend_onnx::open(&toy_params(dir.path(), serde_json::json!({}))).expect("open");
    let names = backend.hidden_state_names();
    assert_eq!(names.source, HiddenSource::GraphOutputs);
    assert_eq!(names.names, outputs);
    let rows = backend.encode(&toy_request(3)).expect("encode");
    assert_eq!((rows.layers, rows.hidden), (4, 4));
    assert_close(state(&rows, 0, 0), &toy_layer0());
}

#[test]
fn hidden_states_named_in_the_spec_win_and_are_checked() {
    let hidden = |l: usize| format!("norm_{l}");
    let model = toy_encoder(ELEM_INT64, 2, false, hidden, &[hidden(2)]);
    let dir = toy_folder(&model);
    // Any tensors the user names: here the attention LayerNorms.
    let chosen = serde_json::json!({"hidden_states": ["norm_0", "layer1_attention_norm"]});
    let backend = sieve_backend_onnx::open(&toy_params(dir.path(), chosen)).expect("open");
    assert_eq!(backend.hidden_state_names().source, HiddenSource::Explicit);
    assert_eq!(backend.describe().num_layers, 1);
    let rows = backend.encode(&toy_request(1)).expect("encode");
    assert_eq!(rows.layers, 2);

    let typo = serde_json::json!({"hidden_states": ["norm_0", "norm_9"]});
    let message = sieve_backend_onnx::open(&toy_params(dir.path(), typo)).expect_err("typo");
    println!("{message}");
    assert!(
        message.contains("'norm_9'") && message.contains("no node"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------
// Errors.

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

#[test]
fn a_cut_off_model_file_is_a_clear_error() {
    let bytes = std::fs::read(onnx_model()).expect("read the model");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("half.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let message = sieve_backend_onnx::open(&onnx_params(&path)).expect_err("cut off");
    println!("{message}");
    assert!(message.contains("not a valid ONNX model"), "{message}");
    assert!(message.contains("half.onnx"), "{message}");
}

/// input_ids -> Cast(float) -> output: a valid model with no encoder.
fn cast_model() -> Vec<u8> {
    let int_input = |name: &str| ValueInfoProto::tensor(name, ELEM_INT64, &["batch", "seq"]);
    ModelProto {
        ir_version: 8,
        producer_name: "sieve-test".into(),
        graph: Some(GraphProto {
            node: vec![cast("input_ids", "output")],
            name: "cast".into(),
            input: vec![int_input("input_ids"), int_input("attention_mask")],
            output: vec![ValueInfoProto::tensor(
                "output",
                ELEM_FLOAT,
                &["batch", "seq"],
            )],
            ..Default::default()
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
    assert!(message.contains("cast.onnx"), "{message}");
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
fn a_file_that_is_not_onnx_runtime_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, "not a shared library").expect("write");
    let params = serde_json::json!({
        "model": onnx_model(),
        "tokenizer": tokenizer_dir(),
        "runtime": fake,
    })
    .to_string();
    let message = sieve_backend_onnx::open(&params).expect_err("not a library");
    println!("{message}");
    // Depending on test order, ONNX Runtime is not loaded yet (dlopen
    // fails) or already loaded from the real library (one per process):
    // both are refused, naming the file.
    assert!(message.contains(&*fake.to_string_lossy()), "{message}");
    assert!(
        message.contains("cannot load ONNX Runtime") || message.contains("already loaded"),
        "{message}"
    );
}

#[test]
fn unknown_parameters_are_refused() {
    let params = serde_json::json!({"model": onnx_model(), "layers": 3}).to_string();
    let message = sieve_backend_onnx::open(&params).expect_err("unknown parameter");
    assert!(
        message.contains("parameter `layers`") && message.contains("expected one of"),
        "{message}"
    );
}
