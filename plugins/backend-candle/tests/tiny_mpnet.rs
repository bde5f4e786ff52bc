//! The MPNet encoder on a tiny randomly initialised MPNet written into a
//! temporary folder: against the NumPy reference on a long padded batch
//! (every relative-position bucket, both directions), truncation, padding,
//! limits and weight names, in well under a second of model time.
//!
//! The NumPy comparison needs the Python environment
//! (scripts/setup-python.sh) and fails, naming it, without.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use common::{cosine, max_abs_diff, python, run_reference};
use sieve_backend_candle::{CandleBackend, CandleParams};
use sieve_core::EncoderPlugin;
use sieve_encoder_common::{HiddenStates, PaddedBatch};

const HIDDEN: usize = 16;
const HEADS: usize = 2;
const INNER: usize = 32;
const LAYERS: usize = 3;
/// Rows of the position table: sequences of up to 200 tokens.
const POSITION_ROWS: usize = 202;
const VOCAB: &[&str] = &[
    "<s>", "<pad>", "</s>", "<unk>", "[UNK]", "the", "cat", "sat", "on", "mat", "a", "dog", "ran",
    ".", ",", "big", "red", "house",
];
const PAD: u32 = 1;

fn write_tiny_mpnet(dir: &Path, prefix: &str) {
    let config = serde_json::json!({
        "architectures": ["MPNetForMaskedLM"], "model_type": "mpnet", "hidden_act": "gelu",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INNER, "layer_norm_eps": 1e-5,
        "max_position_embeddings": POSITION_ROWS, "relative_attention_num_buckets": 32,
        "pad_token_id": PAD, "vocab_size": VOCAB.len()
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
        &[POSITION_ROWS, HIDDEN],
        0.0,
        0.5,
    );
    add("embeddings.LayerNorm.weight".into(), &[HIDDEN], 1.0, 0.1);
    add("embeddings.LayerNorm.bias".into(), &[HIDDEN], 0.0, 0.1);
    // Large enough that a wrong bucket shows in the states.
    add(
        "encoder.relative_attention_bias.weight".into(),
        &[32, HEADS],
        0.0,
        1.0,
    );
    for i in 0..LAYERS {
        let l = format!("encoder.layer.{i}.");
        for (name, out, inp) in [
            ("attention.attn.q", HIDDEN, HIDDEN),
            ("attention.attn.k", HIDDEN, HIDDEN),
            ("attention.attn.v", HIDDEN, HIDDEN),
            ("attention.attn.o", HIDDEN, HIDDEN),
            ("intermediate.dense", INNER, HIDDEN),
            ("output.dense", HIDDEN, INNER),
        ] {
            add(format!("{l}{name}.weight"), &[out, inp], 0.0, 0.3);
            add(format!("{l}{name}.bias"), &[out], 0.0, 0.1);
        }
        for norm in ["attention.LayerNorm", "output.LayerNorm"] {
            add(format!("{l}{norm}.weight"), &[HIDDEN], 1.0, 0.1);
            add(format!("{l}{norm}.bias"), &[HIDDEN], 0.0, 0.1);
        }
    }
    // The real file carries an I64 position_ids buffer the encoder ignores.
    let ids = Tensor::arange(0i64, POSITION_ROWS as i64, &dev).expect("arange");
    weights.insert(format!("{prefix}embeddings.position_ids"), ids);
    weights
}

fn backend_for(dir: &Path) -> CandleBackend {
    let params = CandleParams {
        model: dir.to_path_buf(),
        max_length: None,
        batch_tokens: None,
        threads: None,
        device: None,
    };
    CandleBackend::open(&params).expect("open tiny MPNet")
}

/// `<s>`, `len - 2` content tokens cycling through the words, `</s>`.
fn sequence(len: usize, shift: usize) -> Vec<u32> {
    let words = VOCAB.len() as u32 - 5;
    let mut ids = vec![0];
    ids.extend((0..len - 2).map(|i| 5 + ((i + shift) as u32 * 7) % words));
    ids.push(2);
    ids
}

/// A sequence's states at every layer, token after token.
fn states_of(states: &HiddenStates, layers: usize, b: usize, len: usize) -> Vec<f32> {
    (0..layers)
        .flat_map(|l| (0..len).flat_map(move |p| states.vector(l, b, p).to_vec()))
        .collect()
}

#[test]
fn matches_numpy_on_a_long_padded_batch() {
    let python = python();
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_mpnet(dir.path(), "");
    let backend = backend_for(dir.path());
    // 180 tokens: distances past 128 (the clamped bucket) both ways; the
    // short sequences are padded.
    let batch = PaddedBatch::from_ids(&[sequence(180, 0), sequence(5, 3), sequence(23, 1)], PAD);
    let ours = backend
        .encoder()
        .hidden_states(&batch, LAYERS)
        .expect("forward");
    let reference = run_reference("mpnet_forward.py", dir.path(), &python, &batch);
    assert_eq!(reference.shape, [LAYERS + 1, 3, 180, HIDDEN]);
    for layer in 0..=LAYERS {
        let (mut worst, mut max_diff) = (f32::INFINITY, 0f32);
        for (b, &len) in batch.lengths.iter().enumerate() {
            for p in 0..len {
                let (candle, numpy) = (ours.vector(layer, b, p), reference.vector(layer, b, p));
                worst = worst.min(cosine(candle, numpy));
                max_diff = max_diff.max(max_abs_diff(candle, numpy));
            }
        }
        println!("layer {layer}: min cosine {worst:.7}, max |difference| {max_diff:.2e}");
        assert!(worst > 0.99999 && max_diff < 1e-3, "layer {layer}");
    }
}

#[test]
fn truncation_and_padding_leave_the_states_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_mpnet(dir.path(), "");
    let backend = backend_for(dir.path());
    let short = sequence(9, 2);
    let batch = PaddedBatch::from_ids(&[sequence(60, 0), short.clone()], PAD);
    let full = backend
        .encoder()
        .hidden_states(&batch, LAYERS)
        .expect("forward");
    for last in 0..LAYERS {
        let part = backend
            .encoder()
            .hidden_states(&batch, last)
            .expect("forward");
        assert_eq!(part.layers, last + 1);
        for b in 0..2 {
            let len = batch.lengths[b];
            let diff = max_abs_diff(
                &states_of(&part, last + 1, b, len),
                &states_of(&full, last + 1, b, len),
            );
            assert_eq!(diff, 0.0, "L={last}, sequence {b}");
        }
    }
    // The relative bias of a batch is built for its longest sequence; a
    // shorter one reads the middle of it and gets its own states.
    let alone = PaddedBatch::from_ids(&[short], PAD);
    let alone = backend
        .encoder()
        .hidden_states(&alone, LAYERS)
        .expect("forward");
    let diff = max_abs_diff(
        &states_of(&alone, LAYERS + 1, 0, 9),
        &states_of(&full, LAYERS + 1, 1, 9),
    );
    assert!(diff < 1e-5, "padding changed the states by {diff}");
}

#[test]
fn positions_start_after_the_padding_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_mpnet(dir.path(), "");
    let backend = backend_for(dir.path());
    let description = backend.describe();
    assert_eq!(description.architecture.as_str(), "mpnet");
    assert_eq!(
        (description.num_layers, description.max_positions),
        (LAYERS as u32, POSITION_ROWS as u32 - 2)
    );
    let longest = PaddedBatch::from_ids(&[sequence(POSITION_ROWS - 2, 0)], PAD);
    assert!(backend.encoder().hidden_states(&longest, 1).is_ok());
    let too_long = PaddedBatch::from_ids(&[sequence(POSITION_ROWS - 1, 0)], PAD);
    let message = backend
        .encoder()
        .hidden_states(&too_long, 1)
        .expect_err("error");
    assert!(message.contains("201"), "{message}");
    // The vocabulary's <s>, </s>, <pad> are the specials.
    let special = backend.tokenizer().special_ids();
    assert_eq!((special.cls, special.sep, special.pad), (0, 2, PAD));
}

#[test]
fn weights_with_an_mpnet_prefix_load_the_same() {
    let plain = tempfile::tempdir().expect("tempdir");
    write_tiny_mpnet(plain.path(), "");
    let prefixed = tempfile::tempdir().expect("tempdir");
    write_tiny_mpnet(prefixed.path(), "mpnet.");
    let weights =
        candle_core::safetensors::load(plain.path().join("model.safetensors"), &Device::Cpu)
            .expect("load");
    let renamed: HashMap<String, Tensor> = weights
        .into_iter()
        .map(|(k, v)| (format!("mpnet.{k}"), v))
        .collect();
    candle_core::safetensors::save(&renamed, prefixed.path().join("model.safetensors"))
        .expect("save");
    let batch = PaddedBatch::from_ids(&[sequence(12, 0), sequence(4, 1)], PAD);
    let a = backend_for(plain.path())
        .encoder()
        .hidden_states(&batch, LAYERS)
        .expect("forward");
    let b = backend_for(prefixed.path())
        .encoder()
        .hidden_states(&batch, LAYERS)
        .expect("forward");
    assert_eq!(max_abs_diff(&a.values, &b.values), 0.0);
}
