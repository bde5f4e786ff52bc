//! The candle encoder against an independent NumPy forward pass
//! (`scripts/reference/bert_forward.py`) on the real all-MiniLM-L6-v2 model
//! and real WSJ sentences: every token, every hidden state, cosine >= 0.995.
//!
//! Needs the fetched assets and the Python environment; without them the
//! test fails and says which script to run (it never passes silently).

use std::path::{Path, PathBuf};
use std::process::Command;

use sieve_backend_candle::{CandleBackend, CandleParams};
use sieve_core::abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};
use sieve_encoder_common::{build_plan, HiddenStates, PaddedBatch, Sequence};

const SENTENCES: usize = 20;
const MIN_COSINE: f32 = 0.995;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model folder, the Python interpreter and the WSJ file, or a failure
/// that names the setup script to run.
fn requirements() -> (PathBuf, PathBuf, PathBuf) {
    let root = workspace_root();
    let model = root.join("assets/all-MiniLM-L6-v2");
    let wsj = root.join("assets/wsj/all.txt");
    let python = root.join(".venv/bin/python");
    assert!(
        model.join("model.safetensors").is_file() && wsj.is_file(),
        "assets missing ({} / {}): run scripts/fetch-assets.sh",
        model.display(),
        wsj.display()
    );
    assert!(
        python.is_file(),
        "Python environment missing ({}): run scripts/setup-python.sh",
        python.display()
    );
    (model, python, wsj)
}

/// The first WSJ lines as word units (`word/TAG`, split at the last `/`).
fn wsj_units(path: &Path, count: usize) -> Vec<TextUnit> {
    let text = std::fs::read_to_string(path).expect("read WSJ sample");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .take(count)
        .map(|line| {
            let words: Vec<&str> = line
                .split_whitespace()
                .map(|t| t.rsplit_once('/').map_or(t, |(word, _)| word))
                .collect();
            TextUnit::words(&words)
        })
        .collect()
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

/// Hidden states `[layers, sequences, seq_len, hidden]` from the NumPy script.
struct Reference {
    values: Vec<f32>,
    shape: [usize; 4],
}

impl Reference {
    fn vector(&self, layer: usize, sequence: usize, position: usize) -> &[f32] {
        let [_, batch, seq, hidden] = self.shape;
        let start = ((layer * batch + sequence) * seq + position) * hidden;
        &self.values[start..start + hidden]
    }
}

fn run_numpy(model: &Path, python: &Path, batch: &PaddedBatch) -> Reference {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = |values: &[u32]| -> Vec<Vec<u32>> {
        values.chunks(batch.seq_len).map(<[u32]>::to_vec).collect()
    };
    let request = serde_json::json!({
        "input_ids": rows(&batch.input_ids),
        "attention_mask": rows(&batch.attention_mask),
        "token_type_ids": rows(&batch.type_ids),
    });
    let input = dir.path().join("ids.json");
    let output = dir.path().join("states.npy");
    std::fs::write(&input, request.to_string()).expect("write ids");
    let script = workspace_root().join("scripts/reference/bert_forward.py");
    let status = Command::new(python)
        .arg(&script)
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .status()
        .expect("run the NumPy reference");
    assert!(status.success(), "{} failed: {status}", script.display());
    let (values, shape) = read_npy_f32(&output);
    let shape: [usize; 4] = shape.try_into().expect("4-d reference output");
    Reference { values, shape }
}

/// A little-endian f32 C-order .npy file: values and shape.
fn read_npy_f32(path: &Path) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).expect("read .npy");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not a .npy file");
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header =
        std::str::from_utf8(&bytes[header_start..header_start + header_len]).expect("utf8");
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    let dims = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("shape");
    let shape: Vec<usize> = dims
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().expect("dim"))
        .collect();
    let data = &bytes[header_start + header_len..];
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, shape)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let norm = |v: &[f32]| {
        v.iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt()
    };
    (dot / (norm(a) * norm(b)).max(1e-30)) as f32
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
    };
    let backend = CandleBackend::open(&params).expect("open the model");
    let request = word_request(wsj_units(&wsj, SENTENCES), 8);
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
                let diff = candle
                    .iter()
                    .zip(numpy)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                max_diff = max_diff.max(diff);
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
