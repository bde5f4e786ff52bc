//! The linear probe: multinomial logistic regression (or linear regression)
//! on activations, with the paper's penalty.
//!
//! Two solvers share one data path and one loss implementation:
//! - [`Solver::Adam`] is Dalvi et al.'s recipe (PyTorch Adam, lr 1e-3,
//!   10 epochs, batch 128, `l1 * sum|W| + l2 * ||W||_F` with the UNSQUARED
//!   norm), the default, so results reproduce the paper;
//! - [`Solver::Fista`] solves the proper elastic net (squared L2, L1 by
//!   soft thresholding) full-batch, giving exact zeros and warm starts for
//!   penalty paths.
//!
//! Inputs are row-major `[rows, cols]` f32 slices; matmuls run on candle
//! CPU tensors.

mod bank;
mod bank_cost;
mod bf16;
mod data;
mod error;
mod gemm;
mod longest_first;
mod metrics;
mod model;
mod objective;
mod rng;
mod settings;
mod softmax_exp;
mod solver_adam;
mod solver_device;
mod solver_fista;
mod streamed;

#[cfg(test)]
mod tests;

pub use bank::BankInput;
pub use bank_cost::{bank_step_cost, probe_cost, PROBE_FIXED_COLUMNS};
pub use error::ProbeError;
pub use metrics::{
    accuracy, macro_f1, majority_baseline, majority_class, matthews, pearson, spearman,
};
pub use model::TrainedProbe;
pub use rng::SplitMix64;
pub use settings::{Precision, ProbeSettings, Solver, Task};
pub use streamed::{train_probe_streamed, RowBlocks};

use std::ops::Range;

use data::RawInput;

/// Trains a probe on `x` ([rows, cols] row-major).
///
/// Classification reads `labels` (class indices < `num_classes`) and ignores
/// `targets`; regression reads `targets` and ignores `labels`. `seed` drives
/// the initialisation and shuffling (Adam); equal inputs and seed give
/// bit-identical weights on the same machine.
#[allow(clippy::too_many_arguments)] // the public API mirrors the spec's fields
pub fn train_probe(
    x: &[f32],
    rows: usize,
    cols: usize,
    labels: &[u32],
    targets: &[f32],
    task: Task,
    settings: &ProbeSettings,
    seed: u64,
) -> Result<TrainedProbe, ProbeError> {
    train_probe_warm(x, rows, cols, labels, targets, task, settings, seed, None)
}

/// [`train_probe`] starting from `init`'s weights instead of the default
/// start (torch's random init for Adam, zero for FISTA), e.g. the previous
/// solution along an L1 path. `init` must have the same shape and the same
/// standardisation setting; its stored mean/std are not reused (they are
/// recomputed from `x`, identical when `x` is the same training set).
#[allow(clippy::too_many_arguments)] // the public API mirrors the spec's fields
pub fn train_probe_warm(
    x: &[f32],
    rows: usize,
    cols: usize,
    labels: &[u32],
    targets: &[f32],
    task: Task,
    settings: &ProbeSettings,
    seed: u64,
    init: Option<&TrainedProbe>,
) -> Result<TrainedProbe, ProbeError> {
    settings.validate()?;
    let raw = RawInput::new(x, (rows, cols), labels, targets, task);
    if let Some(init) = init {
        check_warm_start(init, task.outputs(), cols, settings.standardize)?;
    }
    let init = init.map(|p| (p.weights.as_slice(), p.bias.as_slice()));
    if settings.solver == Solver::Adam && settings.precision == Precision::Bf16 {
        // `validate` allows bf16 on the CPU only.
        let problem = bf16::RoundedProblem::new(raw, settings.standardize)?;
        let all_columns = 0..cols;
        let all = std::slice::from_ref(&all_columns);
        let mut fitted = bf16::train_adam_bank_bf16(&problem, all, settings, seed, init)?;
        return Ok(fitted_probe(
            fitted.remove(0),
            problem.outputs,
            cols,
            problem.standardization,
            "",
        ));
    }
    let problem = raw.into_problem(settings.standardize)?;
    let fitted = match settings.solver {
        Solver::Adam if settings.device != "cpu" => {
            let device =
                solver_device::device(&settings.device).map_err(ProbeError::InvalidSettings)?;
            solver_device::train_adam_on(&device, &problem, settings, seed, init)?
        }
        Solver::Adam => solver_adam::train_adam(&problem, settings, seed, init)?,
        Solver::Fista => solver_fista::train_fista(&problem, settings, init)?,
    };
    Ok(fitted_probe(
        fitted,
        problem.outputs,
        cols,
        problem.standardization,
        "",
    ))
}

/// Trains one probe per column range of `x` ([rows, cols] row-major), as
/// [`train_probe`] would on each range's columns with the same seed; the
/// paper's Adam recipe on the CPU trains them together over one pass of
/// shared mini-batches (see [`BankInput`]), other settings train them one
/// after the other.
#[allow(clippy::too_many_arguments)] // the public API mirrors the spec's fields
pub fn train_probe_bank(
    x: &[f32],
    rows: usize,
    cols: usize,
    labels: &[u32],
    targets: &[f32],
    task: Task,
    settings: &ProbeSettings,
    seed: u64,
    ranges: &[Range<usize>],
) -> Result<Vec<TrainedProbe>, ProbeError> {
    BankInput::new(x, (rows, cols), labels, targets, task, settings, seed)?.train(ranges)
}

/// The batch steps one probe on `rows` training rows plans for the
/// progress display (see [`crate::util::progress::ProbeWork`]): every
/// mini-batch of every epoch for Adam, the iteration limit for FISTA (a
/// full-batch iteration counts as one step).
pub fn planned_batch_steps(settings: &ProbeSettings, rows: usize) -> u64 {
    match settings.solver {
        Solver::Adam => solver_adam::batch_steps(rows, settings, 1),
        Solver::Fista => settings.max_iter as u64,
    }
}

/// The trained probe of a solver's result; the note says which solver
/// ran, with what, and `how` (e.g. that the rows were streamed).
fn fitted_probe(
    fitted: model::Fitted,
    outputs: usize,
    features: usize,
    standardization: Option<(Vec<f32>, Vec<f32>)>,
    how: &str,
) -> TrainedProbe {
    let standardized = if standardization.is_some() {
        " standardized"
    } else {
        ""
    };
    TrainedProbe {
        weights: fitted.weights,
        bias: fitted.bias,
        outputs,
        features,
        standardization,
        solver_note: format!("{}{standardized}{how}", fitted.note),
    }
}

fn check_warm_start(
    init: &TrainedProbe,
    outputs: usize,
    features: usize,
    standardize: bool,
) -> Result<(), ProbeError> {
    let shape_ok = init.outputs == outputs
        && init.features == features
        && init.weights.len() == outputs * features
        && init.bias.len() == outputs;
    if !shape_ok {
        return Err(ProbeError::WarmStartMismatch {
            got_outputs: init.outputs,
            got_features: init.features,
            outputs,
            features,
        });
    }
    if init.standardization.is_some() != standardize {
        return Err(ProbeError::InvalidSettings(format!(
            "warm start probe was trained with standardize={}, settings say standardize={}",
            init.standardization.is_some(),
            standardize
        )));
    }
    Ok(())
}
