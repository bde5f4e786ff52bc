//! The backend on a tiny randomly initialised BERT written into a temporary
//! folder (config.json, vocab.txt, model.safetensors): shapes, truncation,
//! rows, pooling, windowing and error messages, without any download.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use sieve_backend_candle::{open, CandleBackend, CandleParams};
use sieve_core::abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncodedRows, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};
use sieve_encoder_common::{HiddenStates, PaddedBatch};

const HIDDEN: usize = 16;
const LAYERS: usize = 6;
const MAX_POSITIONS: usize = 32;
const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog",
    "ran", "un", "##believ", "##able", ".", ",", "##s", "big", "red", "house",
];

/// Writes a tiny BERT (6 layers, hidden 16, 2 heads of 8, FFN 32) with
/// weight names under `prefix` ("" like MiniLM, or "bert.").
fn write_tiny_model(dir: &Path, prefix: &str) {
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": 2,
        "intermediate_size": 32, "layer_norm_eps": 1e-12,
        "max_position_embeddings": MAX_POSITIONS, "type_vocab_size": 2,
        "vocab_size": VOCAB.len(), "position_embedding_type": "absolute"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n")).expect("vocab");
    candle_core::safetensors::save(&tiny_weights(prefix), dir.join("model.safetensors"))
        .expect("weights");
}

fn tiny_weights(prefix: &str) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut weights = HashMap::new();
    let mut add = |name: String, shape: &[usize], mean: f32, std: f32| {
        let tensor = Tensor::randn(mean, std, shape, &dev).expect("randn");
        weights.insert(format!("{prefix}{name}"), tensor);
    };
    add(
        "embeddings.word_embeddings.weight".into(),
        &[VOCAB.len(), HIDDEN],
        0.0,
        0.5,
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        &[MAX_POSITIONS, HIDDEN],
        0.0,
        0.5,
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        &[2, HIDDEN],
        0.0,
        0.5,
    );
    add("embeddings.LayerNorm.weight".into(), &[HIDDEN], 1.0, 0.1);
    add("embeddings.LayerNorm.bias".into(), &[HIDDEN], 0.0, 0.1);
    for i in 0..LAYERS {
        let l = format!("encoder.layer.{i}.");
        for (name, out, inp) in [
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", 32, HIDDEN),
            ("output.dense", HIDDEN, 32),
        ] {
            add(format!("{l}{name}.weight"), &[out, inp], 0.0, 0.3);
            add(format!("{l}{name}.bias"), &[out], 0.0, 0.1);
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(format!("{l}{norm}.weight"), &[HIDDEN], 1.0, 0.1);
            add(format!("{l}{norm}.bias"), &[HIDDEN], 0.0, 0.1);
        }
    }
    // MiniLM's file carries an I64 position_ids buffer the encoder ignores.
    let ids = Tensor::arange(0i64, MAX_POSITIONS as i64, &dev).expect("arange");
    weights.insert(format!("{prefix}embeddings.position_ids"), ids);
    weights
}

struct TinyModel {
    dir: tempfile::TempDir,
    backend: CandleBackend,
}

fn tiny_model(max_length: Option<usize>) -> TinyModel {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_model(dir.path(), "");
    let backend = backend_for(dir.path(), max_length);
    TinyModel { dir, backend }
}

fn backend_for(dir: &Path, max_length: Option<usize>) -> CandleBackend {
    let params = CandleParams {
        model: dir.to_path_buf(),
        max_length,
        batch_tokens: None,
        threads: None,
        device: None,
    };
    CandleBackend::open(&params).expect("open tiny model")
}

fn request(units: Vec<TextUnit>, level: RowLevel, last_layer: u32) -> EncodeRequest {
    EncodeRequest {
        units: RVec::from(units),
        level,
        subword_pooling: SubwordPooling::Last,
        sentence_pooling: SentencePooling::Cls,
        last_layer,
        batch_size: 3,
    }
}

fn ids(tokens: &[&str]) -> Vec<u32> {
    tokens
        .iter()
        .map(|t| VOCAB.iter().position(|v| v == t).expect("in vocab") as u32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Row `row`, layer `layer` of encoded rows.
fn row(rows: &EncodedRows, row: usize, layer: usize) -> &[f32] {
    let hidden = rows.hidden as usize;
    let start = (row * rows.layers as usize + layer) * hidden;
    &rows.values[start..start + hidden]
}

fn two_sequences() -> PaddedBatch {
    PaddedBatch::from_ids(
        &[
            ids(&["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]),
            ids(&["[CLS]", "a", "dog", "[SEP]"]),
        ],
        0,
    )
}

#[test]
fn all_seven_hidden_states_come_back() {
    let tiny = tiny_model(None);
    let description = tiny.backend.describe();
    assert_eq!((description.num_layers, description.hidden_size), (6, 16));
    assert_eq!(description.max_positions, MAX_POSITIONS as u32);
    let states = tiny
        .backend
        .encoder()
        .hidden_states(&two_sequences(), 6)
        .expect("forward");
    assert_eq!(
        (states.layers, states.hidden, states.sequences()),
        (7, HIDDEN, 2)
    );
    assert_eq!(states.values.len(), 7 * (8 + 4) * HIDDEN);
    assert!(states.values.iter().all(|v| v.is_finite()));
    // Every layer changes the states.
    assert!(max_diff(states.vector(5, 0, 1), states.vector(6, 0, 1)) > 1e-3);
}

#[test]
fn truncation_stops_early_and_keeps_the_earlier_states() {
    let tiny = tiny_model(None);
    let batch = two_sequences();
    let full = tiny
        .backend
        .encoder()
        .hidden_states(&batch, 6)
        .expect("forward");
    for last in 0..=6 {
        let part = tiny
            .backend
            .encoder()
            .hidden_states(&batch, last)
            .expect("forward");
        assert_eq!(part.layers, last + 1);
        let same = |s: &HiddenStates, l: usize| -> Vec<f32> {
            (0..2)
                .flat_map(|b| (0..batch.lengths[b]).flat_map(move |p| s.vector(l, b, p).to_vec()))
                .collect()
        };
        for layer in 0..=last {
            assert_eq!(
                max_diff(&same(&part, layer), &same(&full, layer)),
                0.0,
                "L={last}, {layer}"
            );
        }
    }
    assert!(tiny.backend.encoder().hidden_states(&batch, 7).is_err());
}

#[test]
fn ids_outside_the_model_are_an_error() {
    let tiny = tiny_model(None);
    let batch = PaddedBatch::from_ids(&[vec![2, 999, 3]], 0);
    let message = tiny
        .backend
        .encoder()
        .hidden_states(&batch, 2)
        .expect_err("error");
    assert!(message.contains("token id 999"), "{message}");
}

#[test]
fn padding_does_not_change_a_sequence() {
    let tiny = tiny_model(None);
    let alone = PaddedBatch::from_ids(&[ids(&["[CLS]", "a", "dog", "[SEP]"])], 0);
    let alone = tiny
        .backend
        .encoder()
        .hidden_states(&alone, 6)
        .expect("forward");
    let together = tiny
        .backend
        .encoder()
        .hidden_states(&two_sequences(), 6)
        .expect("forward");
    for p in 0..4 {
        assert!(max_diff(alone.vector(6, 0, p), together.vector(6, 1, p)) < 1e-5);
    }
}

#[test]
fn one_row_per_word_and_pooling_picks_subwords() {
    let tiny = tiny_model(None);
    let words = ["the", "cats", "unbelievable", "\u{7}", "mat"];
    let units = vec![
        TextUnit::words(&words),
        TextUnit::words(&["a", "dog"]),
        TextUnit::words(&["ran"]),
    ];
    let rows = tiny
        .backend
        .encode(&request(units, RowLevel::Word, 6))
        .expect("encode");
    assert_eq!(rows.rows, 8);
    assert_eq!(rows.rows_per_unit.as_slice(), &[5, 2, 1]);
    assert_eq!((rows.layers, rows.hidden), (7, 16));
    // Subwords: the cat ##s un ##believ ##able [UNK] mat; specials excluded.
    assert_eq!(rows.subword_tokens, 8 + 2 + 1);

    let sequence = ids(&[
        "[CLS]", "the", "cat", "##s", "un", "##believ", "##able", "[UNK]", "mat", "[SEP]",
    ]);
    let batch = PaddedBatch::from_ids(&[sequence], 0);
    let states = tiny
        .backend
        .encoder()
        .hidden_states(&batch, 6)
        .expect("forward");
    let pooled = |pooling| {
        let mut req = request(vec![TextUnit::words(&words)], RowLevel::Word, 6);
        req.subword_pooling = pooling;
        tiny.backend.encode(&req).expect("encode")
    };
    let (first, last, average) = (
        pooled(SubwordPooling::First),
        pooled(SubwordPooling::Last),
        pooled(SubwordPooling::Average),
    );
    for layer in [0, 3, 6] {
        assert!(max_diff(row(&first, 2, layer), states.vector(layer, 0, 4)) < 1e-5);
        assert!(max_diff(row(&last, 2, layer), states.vector(layer, 0, 6)) < 1e-5);
        let mean: Vec<f32> = (0..HIDDEN)
            .map(|i| (4..7).map(|p| states.vector(layer, 0, p)[i]).sum::<f32>() / 3.0)
            .collect();
        assert!(max_diff(row(&average, 2, layer), &mean) < 1e-5);
        assert!(max_diff(row(&last, 3, layer), states.vector(layer, 0, 7)) < 1e-5);
    }
}

#[test]
fn sentence_rows_pool_cls_or_mean() {
    let tiny = tiny_model(None);
    let units = vec![
        TextUnit::sentence("the cat sat", None),
        TextUnit::sentence("a dog", Some("ran")),
    ];
    let mut req = request(units, RowLevel::Sentence, 2);
    let cls = tiny.backend.encode(&req).expect("encode");
    req.sentence_pooling = SentencePooling::Mean;
    let mean = tiny.backend.encode(&req).expect("encode");
    assert_eq!((cls.rows, cls.layers), (2, 3));
    let batch = PaddedBatch::from_ids(&[ids(&["[CLS]", "the", "cat", "sat", "[SEP]"])], 0);
    let states = tiny
        .backend
        .encoder()
        .hidden_states(&batch, 2)
        .expect("forward");
    assert!(max_diff(row(&cls, 0, 2), states.vector(2, 0, 0)) < 1e-5);
    let expected: Vec<f32> = (0..HIDDEN)
        .map(|i| (1..4).map(|p| states.vector(2, 0, p)[i]).sum::<f32>() / 3.0)
        .collect();
    assert!(max_diff(row(&mean, 0, 2), &expected) < 1e-5);
}

#[test]
fn long_word_units_are_windowed_into_independent_sequences() {
    // max_length 6 leaves 4 subwords per window.
    let tiny = tiny_model(Some(6));
    let words = [
        "the", "cat", "sat", "on", "the", "mat", "a", "big", "red", "house",
    ];
    let rows = tiny
        .backend
        .encode(&request(vec![TextUnit::words(&words)], RowLevel::Word, 6))
        .expect("encode");
    assert_eq!((rows.rows, rows.windowed_units), (10, 1));
    // Each window is its own sequence: the same rows as encoding the
    // windows as separate units.
    let windows = vec![
        TextUnit::words(&words[..4]),
        TextUnit::words(&words[4..8]),
        TextUnit::words(&words[8..]),
    ];
    let separate = tiny
        .backend
        .encode(&request(windows, RowLevel::Word, 6))
        .expect("encode");
    assert_eq!(separate.windowed_units, 0);
    assert!(max_diff(&rows.values, &separate.values) < 1e-5);
}

#[test]
fn a_long_sentence_is_windowed_and_a_long_pair_is_refused() {
    let tiny = tiny_model(Some(6));
    let long = "the cat sat on the mat a big red house";
    let rows = tiny
        .backend
        .encode(&request(
            vec![TextUnit::sentence(long, None)],
            RowLevel::Sentence,
            1,
        ))
        .expect("encode");
    assert_eq!((rows.rows, rows.windowed_units), (1, 1));
    let pair = vec![
        TextUnit::sentence("a", None),
        TextUnit::sentence("the cat sat", Some("on the mat")),
    ];
    let message = tiny
        .backend
        .encode(&request(pair, RowLevel::Sentence, 1))
        .expect_err("error");
    assert!(message.contains("unit 1"), "{message}");
}

#[test]
fn weights_with_a_bert_prefix_load_the_same() {
    let tiny = tiny_model(None);
    let prefixed = tempfile::tempdir().expect("tempdir");
    write_tiny_model(prefixed.path(), "bert.");
    // Same weights under the other names.
    let plain =
        candle_core::safetensors::load(tiny.dir.path().join("model.safetensors"), &Device::Cpu)
            .expect("load");
    let renamed: HashMap<String, Tensor> = plain
        .into_iter()
        .map(|(k, v)| (format!("bert.{k}"), v))
        .collect();
    candle_core::safetensors::save(&renamed, prefixed.path().join("model.safetensors"))
        .expect("save");
    let other = backend_for(prefixed.path(), None);
    let batch = two_sequences();
    let a = tiny
        .backend
        .encoder()
        .hidden_states(&batch, 6)
        .expect("forward");
    let b = other.encoder().hidden_states(&batch, 6).expect("forward");
    assert_eq!(max_diff(&a.values, &b.values), 0.0);
}

#[test]
fn plugin_params_come_as_json_and_errors_name_the_file() {
    let tiny = tiny_model(None);
    let folder = tiny.dir.path().display().to_string();
    let json =
        serde_json::json!({"model": folder, "max_length": 16, "batch_tokens": 64, "threads": 1});
    let backend = open(&json.to_string()).expect("open with params");
    assert_eq!(backend.describe().max_positions, 16);
    let rows = backend.encode(&request(
        vec![TextUnit::words(&["the", "cat"])],
        RowLevel::Word,
        6,
    ));
    assert_eq!(rows.expect("encode in own pool").rows, 2);

    let typo = open(&serde_json::json!({"model": folder, "max_len": 16}).to_string());
    assert!(typo.expect_err("error").contains("max_len"));

    std::fs::remove_file(tiny.dir.path().join("model.safetensors")).expect("remove");
    let message = open(&serde_json::json!({"model": folder}).to_string()).expect_err("error");
    assert!(message.contains("model.safetensors"), "{message}");

    std::fs::write(tiny.dir.path().join("config.json"), "{\"hidden_size\": 16}").expect("write");
    let message = open(&serde_json::json!({"model": folder}).to_string()).expect_err("error");
    assert!(message.contains("config.json"), "{message}");
}

#[test]
fn half_precision_weights_are_widened() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_model(dir.path(), "");
    let weights =
        candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu)
            .expect("load");
    let half: HashMap<String, Tensor> = weights
        .into_iter()
        .map(|(k, v)| {
            let v = if v.dtype() == DType::F32 {
                v.to_dtype(DType::F16).expect("f16")
            } else {
                v
            };
            (k, v)
        })
        .collect();
    candle_core::safetensors::save(&half, dir.path().join("model.safetensors")).expect("save");
    let backend = backend_for(dir.path(), None);
    let states = backend
        .encoder()
        .hidden_states(&two_sequences(), 6)
        .expect("forward");
    assert!(states.values.iter().all(|v| v.is_finite()));
}
