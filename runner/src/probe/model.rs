//! A trained probe and its predictions.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::data::{standardize_rows, transposed_tensor, with_f32};

/// Rows scored per matmul at prediction time: bounds the memory of the
/// tensor copy (and of standardisation) for large evaluation sets.
const PREDICT_BLOCK: usize = 8192;

/// A linear probe `scores = standardize(x) W^T + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedProbe {
    /// [outputs, features], row-major; they act on standardised inputs
    /// when `standardization` is set (then |W| compares neurons fairly).
    pub weights: Vec<f32>,
    /// One per output.
    pub bias: Vec<f32>,
    /// Classes (classification) or 1 (regression).
    pub outputs: usize,
    /// Input columns.
    pub features: usize,
    /// (mean, std) applied before the linear layer; std 0 maps to 0.
    pub standardization: Option<(Vec<f32>, Vec<f32>)>,
    /// How it was trained, for reports.
    pub solver_note: String,
}

impl TrainedProbe {
    /// Weights of one output (one class) over all features.
    pub fn class_weights(&self, output: usize) -> &[f32] {
        &self.weights[output * self.features..(output + 1) * self.features]
    }

    /// Number of weights that are exactly zero.
    pub fn zero_weights(&self) -> usize {
        self.weights.iter().filter(|&&w| w == 0.0).count()
    }

    /// Raw scores [rows, outputs] row-major (logits for a classifier).
    ///
    /// Panics when `x.len() != rows * features`: a caller bug, not a data
    /// problem (training already validated the data).
    pub fn scores(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(
            x.len(),
            rows * self.features,
            "probe scores: x has {} values, expected {} rows x {} features",
            x.len(),
            rows,
            self.features
        );
        if rows == 0 {
            return Vec::new();
        }
        let wt = transposed_tensor(&self.weights, self.outputs, self.features)
            .expect("probe weights have the declared shape");
        let mut out = Vec::with_capacity(rows * self.outputs);
        for block in x.chunks(PREDICT_BLOCK * self.features) {
            self.score_block(block, &wt, &mut out);
        }
        out
    }

    fn score_block(&self, block: &[f32], wt: &Tensor, out: &mut Vec<f32>) {
        let n = block.len() / self.features;
        let xt = match &self.standardization {
            Some((mean, std)) => {
                let z = standardize_rows(block, self.features, mean, std);
                Tensor::from_vec(z, (n, self.features), &Device::Cpu)
            }
            None => Tensor::from_slice(block, (n, self.features), &Device::Cpu),
        }
        .expect("block has the declared shape");
        let z = xt.matmul(wt).expect("shapes agree");
        with_f32(&z, |z| {
            for row in z.chunks_exact(self.outputs) {
                out.extend(row.iter().zip(&self.bias).map(|(v, b)| v + b));
            }
        })
        .expect("matmul output is a contiguous CPU f32 tensor");
    }

    /// Most probable class per row (ties go to the lowest index).
    pub fn predict_classes(&self, x: &[f32], rows: usize) -> Vec<u32> {
        self.scores(x, rows)
            .chunks_exact(self.outputs)
            .map(argmax)
            .collect()
    }

    /// Predicted value per row for a regression probe (one output); for a
    /// multi-output probe this is the flattened score matrix.
    pub fn predict_values(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.scores(x, rows)
    }
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// What a solver hands back before the probe is assembled.
pub(crate) struct Fitted {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub note: String,
}
