//! The candle encoder against an independent NumPy forward pass
//! (`scripts/reference/bert_forward.py`) on the real all-MiniLM-L6-v2 model
//! and real WSJ sentences: every token, every hidden state, cosine >= 0.995.
//!
//! Needs the fetched assets and the Python environment; without them the
//! test fails and says which script to run (it never passes silently).

mod common;

use std::path::{Path, PathBuf};

use common::{cosine, max_abs_diff, python, run_reference, workspace_root, wsj_units, Reference};
use sieve_backend_candle::{CandleBackend, CandleParams};
use sieve_core::abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};
use sieve_encoder_common::{build_plan, HiddenStates, PaddedBatch, Sequence};

const SENTENCES: usize = 20;
const MIN_COSINE: f32 = 0.995;

/// The model folder, the Python interpreter and the WSJ file, or a failure
/// that names the setup script to run.
fn requirements() -> (PathBuf, PathBuf, PathBuf) {
    let root = workspace_root();
    let model = root.join("assets/all-MiniLM-L6-v2");
    let wsj = root.join("assets/wsj/all.txt");
    assert!(
        model.join("model.safetensors").is_file() && wsj.is_file(),
        "assets missing ({} / {}): run scripts/fetch-assets.sh",
        model.display(),
        wsj.display()
    );
    (model, python(), wsj)
}

fn word_request(units: Vec<TextUnit>, batch_size: u32) -> EncodeRequest {
    EncodeRequest {
        units: RVec::from(units),
        level: RowLevel::Word,
        subword_pooling: SubwordPooling::Last,
        sentence_pooling: SentencePooling::Cls,
        last_layer: 6,
        batch_size,
    }
}

fn run_numpy(model: &Path, python: &Path, batch: &PaddedBatch) -> Reference {
    run_reference("bert_forward.py", model, python, batch)
}

/// Batches of sequences per candle forward pass: 20 sentences make two
/// batches, each padded (the sentences differ in length).
const CHUNK: usize = 12;

/// Candle hidden states of `sequences`, one [`HiddenStates`] per chunk.
fn candle_states(backend: &CandleBackend, sequences: &[&Sequence], pad: u32) -> Vec<HiddenStates> {
    sequences
        .chunks(CHUNK)
        .map(|chunk| {
            let pairs: Vec<(&[u32], &[u32])> = chunk
                .iter()
                .map(|s| (s.ids.as_slice(), s.type_ids.as_slice()))
                .collect();
            let batch = PaddedBatch::new(&pairs, pad);
            assert!(
                batch.lengths.iter().any(|&l| l < batch.seq_len),
                "want a padded batch"
            );
            backend.encoder().hidden_states(&batch, 6).expect("forward")
        })
        .collect()
}

#[test]
fn every_token_and_layer_matches_numpy() {
    let (model, python, wsj) = requirements();
    let params = CandleParams {
        model: model.clone(),
        max_length: None,
        batch_tokens: None,
        threads: None,
        device: None,
    };
    let backend = CandleBackend::open(&params).expect("open the model");
    let lines: Vec<usize> = (0..SENTENCES).collect();
    let request = word_request(wsj_units(&wsj, &lines), 8);
    let plan = build_plan(&request, backend.tokenizer(), 512).expect("plan");
    assert_eq!(
        plan.sequences.len(),
        SENTENCES,
        "no sentence should need windows"
    );
    let sequences: Vec<&Sequence> = plan.sequences.iter().collect();
    let pad = backend.tokenizer().special_ids().pad;
    let ours = candle_states(&backend, &sequences, pad);
    let pairs: Vec<(&[u32], &[u32])> = sequences
        .iter()
        .map(|s| (s.ids.as_slice(), s.type_ids.as_slice()))
        .collect();
    let reference = run_numpy(&model, &python, &PaddedBatch::new(&pairs, pad));
    let hidden = reference.shape[3];
    assert_eq!(reference.shape[0], 7);
    for layer in 0..7 {
        let (mut worst, mut max_diff) = (f32::INFINITY, 0f32);
        for (i, seq) in sequences.iter().enumerate() {
            for p in 0..seq.len() {
                let candle = ours[i / CHUNK].vector(layer, i % CHUNK, p);
                let numpy = reference.vector(layer, i, p);
                worst = worst.min(cosine(candle, numpy));
                max_diff = max_diff.max(max_abs_diff(candle, numpy));
            }
        }
        println!("layer {layer}: min cosine {worst:.7}, max |difference| {max_diff:.2e}");
        assert!(
            worst >= MIN_COSINE,
            "layer {layer}: min cosine {worst} < {MIN_COSINE}"
        );
    }

    // The plugin path (tokenise, sort, batch, pool) gives the same rows.
    let rows = backend.encode(&request).expect("encode");
    assert_eq!(rows.rows as usize, plan.rows);
    let row_size = 7 * hidden;
    let mut worst = f32::INFINITY;
    for (i, seq) in sequences.iter().enumerate() {
        for target in &seq.targets {
            let position = target.positions.start;
            for layer in 0..7 {
                let start = target.row * row_size + layer * hidden;
                let row = &rows.values[start..start + hidden];
                worst = worst.min(cosine(row, reference.vector(layer, i, position)));
            }
        }
    }
    println!("pooled word rows: min cosine {worst:.7}");
    assert!(worst >= MIN_COSINE, "pooled rows: min cosine {worst}");
}
