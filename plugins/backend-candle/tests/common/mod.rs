//! Helpers of the tests that compare the candle encoders with the NumPy
//! references in `scripts/reference/`.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

use sieve_core::TextUnit;
use sieve_encoder_common::PaddedBatch;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python interpreter of `scripts/setup-python.sh`, or a failure that
/// names the script (never a silent pass).
pub fn python() -> PathBuf {
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "Python environment missing ({}): run scripts/setup-python.sh",
        python.display()
    );
    python
}

/// WSJ lines (`word/TAG`, split at the last `/`) as word units.
pub fn wsj_units<'a>(path: &Path, lines: impl IntoIterator<Item = &'a usize>) -> Vec<TextUnit> {
    let text = std::fs::read_to_string(path).expect("read WSJ sample");
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .into_iter()
        .map(|&i| {
            let words: Vec<&str> = all[i]
                .split_whitespace()
                .map(|t| t.rsplit_once('/').map_or(t, |(word, _)| word))
                .collect();
            TextUnit::words(&words)
        })
        .collect()
}

/// Hidden states `[layers, sequences, seq_len, hidden]` from a NumPy script.
pub struct Reference {
    pub values: Vec<f32>,
    pub shape: [usize; 4],
}

impl Reference {
    pub fn vector(&self, layer: usize, sequence: usize, position: usize) -> &[f32] {
        let [_, batch, seq, hidden] = self.shape;
        let start = ((layer * batch + sequence) * seq + position) * hidden;
        &self.values[start..start + hidden]
    }
}

/// Runs `scripts/reference/{script}` on a padded batch.
pub fn run_reference(script: &str, model: &Path, python: &Path, batch: &PaddedBatch) -> Reference {
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
    let script = workspace_root().join("scripts/reference").join(script);
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
pub fn read_npy_f32(path: &Path) -> (Vec<f32>, Vec<usize>) {
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

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    cosine_f64(a, b) as f32
}

/// Cosine in f64: shows how far from 1 agreement closer than f32 is.
pub fn cosine_f64(a: &[f32], b: &[f32]) -> f64 {
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
    dot / (norm(a) * norm(b)).max(1e-30)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
