//! The candle MPNet encoder against an independent NumPy forward pass
//! (`scripts/reference/mpnet_forward.py`) on the real all-mpnet-base-v2
//! model and real WSJ sentences: all 13 hidden states of every token,
//! cosine >= 0.999.
//!
//! Needs the MPNet asset (`scripts/fetch-assets.sh mpnet`, which the
//! default fetch leaves out) and the Python environment; without them the
//! test fails and says which script to run (it never passes silently).

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{cosine, cosine_f64, max_abs_diff, python, run_reference, workspace_root, wsj_units};
use sieve_backend_candle::{CandleBackend, CandleParams};
use sieve_core::abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};
use sieve_encoder_common::{build_plan, HiddenStates, PaddedBatch, Sequence, SpecialIds};

/// The first WSJ lines, and line 281 (104 words, 120 tokens): keys 91 and
/// more tokens from their query fall in the last, clamped bucket of the
/// relative-position bias.
const LINES: [usize; 6] = [0, 1, 2, 3, 4, 280];
const LAYERS: usize = 12;
const MIN_COSINE: f32 = 0.999;
/// Sequences per candle forward pass: two padded batches, the second
/// with the long sentence and two short ones.
const CHUNK: usize = 3;
/// The NumPy reference pads the short sentences together and runs the long
/// one alone (padding them all to 120 tokens would triple its work).
const SHORT: usize = 5;

/// The model folder and the WSJ file, or a failure naming the fetch.
fn requirements() -> (PathBuf, PathBuf) {
    let root = workspace_root();
    let model = root.join("assets/all-mpnet-base-v2");
    let wsj = root.join("assets/wsj/all.txt");
    assert!(
        model.join("model.safetensors").is_file(),
        "MPNet model missing ({}): run scripts/fetch-assets.sh mpnet",
        model.display()
    );
    assert!(
        wsj.is_file(),
        "WSJ sample missing ({}): run scripts/fetch-assets.sh",
        wsj.display()
    );
    (model, wsj)
}

fn word_request(units: Vec<TextUnit>) -> EncodeRequest {
    EncodeRequest {
        units: RVec::from(units),
        level: RowLevel::Word,
        subword_pooling: SubwordPooling::Last,
        sentence_pooling: SentencePooling::Cls,
        last_layer: LAYERS as u32,
        batch_size: 4,
    }
}

fn padded(sequences: &[&Sequence], pad: u32) -> PaddedBatch {
    let pairs: Vec<(&[u32], &[u32])> = sequences
        .iter()
        .map(|s| (s.ids.as_slice(), s.type_ids.as_slice()))
        .collect();
    PaddedBatch::new(&pairs, pad)
}

#[test]
fn every_token_and_layer_matches_numpy() {
    let (model, wsj) = requirements();
    let python = python();
    let params = CandleParams {
        model: model.clone(),
        max_length: None,
        batch_tokens: None,
        threads: None,
        device: None,
    };
    let backend = CandleBackend::open(&params).expect("open all-mpnet-base-v2");
    let description = backend.describe();
    assert_eq!(description.architecture.as_str(), "mpnet");
    assert_eq!(
        (
            description.num_layers,
            description.hidden_size,
            description.max_positions
        ),
        (12, 768, 512)
    );
    // The tokenizer's post-processor and padding name MPNet's specials
    // (the vocabulary also holds BERT's [CLS]/[SEP]/[PAD]).
    let special = backend.tokenizer().special_ids();
    assert_eq!(
        special,
        SpecialIds {
            cls: 0,
            sep: 2,
            pad: 1,
            unk: 104
        }
    );

    let request = word_request(wsj_units(&wsj, &LINES));
    let plan = build_plan(&request, backend.tokenizer(), 512).expect("plan");
    let sequences: Vec<&Sequence> = plan.sequences.iter().collect();
    assert_eq!(
        sequences.len(),
        LINES.len(),
        "no sentence should need windows"
    );
    let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
    assert!(
        longest > 91,
        "want distances in the last bucket, longest is {longest}"
    );

    let started = Instant::now();
    let ours: Vec<HiddenStates> = sequences
        .chunks(CHUNK)
        .map(|chunk| {
            let batch = padded(chunk, special.pad);
            assert!(batch.lengths.iter().any(|&l| l < batch.seq_len));
            let states = backend.encoder().hidden_states(&batch, LAYERS);
            states.expect("forward")
        })
        .collect();
    let candle_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (short, long) = sequences.split_at(SHORT);
    let references = [short, long].map(|part| {
        run_reference(
            "mpnet_forward.py",
            &model,
            &python,
            &padded(part, special.pad),
        )
    });
    println!(
        "candle forward {candle_seconds:.1} s, NumPy reference {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let numpy_state = |layer: usize, i: usize, position: usize| match i.checked_sub(SHORT) {
        None => references[0].vector(layer, i, position),
        Some(j) => references[1].vector(layer, j, position),
    };
    assert_eq!(references[0].shape[0], LAYERS + 1);
    let mut overall = f64::INFINITY;
    for layer in 0..=LAYERS {
        let (mut worst, mut max_diff) = (f64::INFINITY, 0f32);
        for (i, seq) in sequences.iter().enumerate() {
            for p in 0..seq.len() {
                let candle = ours[i / CHUNK].vector(layer, i % CHUNK, p);
                let numpy = numpy_state(layer, i, p);
                worst = worst.min(cosine_f64(candle, numpy));
                max_diff = max_diff.max(max_abs_diff(candle, numpy));
            }
        }
        println!(
            "layer {layer:2}: min cosine {worst:.9} (1 - cos = {:.1e}), max |difference| {max_diff:.1e}",
            1.0 - worst
        );
        assert!(
            worst >= MIN_COSINE as f64,
            "layer {layer}: min cosine {worst} < {MIN_COSINE}"
        );
        overall = overall.min(worst);
    }
    println!(
        "all 13 hidden states of {} tokens: min cosine {overall:.9}",
        sequences.iter().map(|s| s.len()).sum::<usize>()
    );

    // The plugin path (tokenise, sort, batch, pool) gives the same rows.
    let rows = backend.encode(&request).expect("encode");
    assert_eq!((rows.rows as usize, rows.layers), (plan.rows, 13));
    let hidden = references[0].shape[3];
    let row_size = (LAYERS + 1) * hidden;
    let mut worst = f32::INFINITY;
    for (i, seq) in sequences.iter().enumerate() {
        for target in &seq.targets {
            let position = target.positions.start;
            for layer in 0..=LAYERS {
                let start = target.row * row_size + layer * hidden;
                let row = &rows.values[start..start + hidden];
                worst = worst.min(cosine(row, numpy_state(layer, i, position)));
            }
        }
    }
    println!("pooled word rows: min cosine {worst:.7}");
    assert!(worst >= MIN_COSINE, "pooled rows: min cosine {worst}");
}
