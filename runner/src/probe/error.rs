//! Errors of probe training; messages name the offending row/column so a
//! bad activation file can be traced.

use thiserror::Error;

/// Why a probe could not be trained.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("empty input: {rows} rows x {cols} columns (need at least one of each)")]
    EmptyInput { rows: usize, cols: usize },
    #[error("x has {len} values but rows x cols = {rows} x {cols} = {expected}")]
    ShapeMismatch {
        len: usize,
        rows: usize,
        cols: usize,
        expected: usize,
    },
    #[error("{what} has {got} entries but x has {rows} rows")]
    LengthMismatch {
        what: &'static str,
        got: usize,
        rows: usize,
    },
    #[error("classification needs at least one class, got num_classes = 0")]
    NoClasses,
    #[error("label {label} at row {row} is out of range (num_classes = {num_classes})")]
    LabelOutOfRange {
        row: usize,
        label: u32,
        num_classes: usize,
    },
    #[error("x[{row}, {col}] is not finite ({value})")]
    NonFiniteInput { row: usize, col: usize, value: f32 },
    #[error("regression target at row {row} is not finite ({value})")]
    NonFiniteTarget { row: usize, value: f32 },
    #[error("invalid probe settings: {0}")]
    InvalidSettings(String),
    #[error("warm start probe does not fit: it has {got_outputs} outputs x {got_features} features, the problem needs {outputs} x {features}")]
    WarmStartMismatch {
        got_outputs: usize,
        got_features: usize,
        outputs: usize,
        features: usize,
    },
    #[error("training diverged: the loss became {0} (lower the learning rate or standardize)")]
    Diverged(f64),
    #[error("reading training rows: {0}")]
    Source(String),
    #[error("tensor backend: {0}")]
    Candle(#[from] candle_core::Error),
}
