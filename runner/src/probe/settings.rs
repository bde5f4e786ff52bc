//! The spec section `probe:` and the task description.
//!
//! Every field has the paper's value as its default, so an empty section
//! reproduces Dalvi et al. (2020); only `shuffle` departs from the paper by
//! default (seeded shuffling is the common practice and costs nothing).

use serde::{Deserialize, Deserializer, Serialize};

use super::error::ProbeError;

/// Which optimiser trains the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// The paper's recipe: mini-batch Adam on mean loss + l1*|W|_1 + l2*|W|_F.
    #[default]
    Adam,
    /// Full-batch proximal gradient with Nesterov momentum on the proper
    /// elastic net (squared L2); gives exact zeros.
    Fista,
}

/// The precision of the Adam probe's matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 products, as the paper's PyTorch code.
    #[default]
    F32,
    /// bf16 operands with f32 sums (weights, Adam state, softmax and loss
    /// stay f32): Intel AMX tiles where the CPU has them, several times
    /// faster; elsewhere the f32 products of the same bf16 values.
    Bf16,
}

/// Settings of the probe (spec section `probe:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeSettings {
    /// Optimiser; `adam` is the paper's.
    pub solver: Solver,
    /// Weight of `sum |W|` (bias not penalised).
    pub l1: f32,
    /// Weight of the L2 term: `||W||_F` (unsquared) for Adam as in the
    /// paper's code, `(1/2)||W||_F^2` for FISTA.
    pub l2: f32,
    /// Adam step size.
    pub learning_rate: f32,
    /// Adam passes over the training rows; 0 is refused while parsing
    /// (with the spec's line): a probe that never trains scores nothing.
    #[serde(deserialize_with = "epochs_at_least_one")]
    pub epochs: usize,
    /// Adam mini-batch size (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Reshuffle rows every epoch (seeded); `false` is the paper's file order.
    pub shuffle: bool,
    /// Z-score every column with the training mean/std before the probe.
    pub standardize: bool,
    /// FISTA iteration limit (at least 1, like `epochs`).
    #[serde(deserialize_with = "max_iter_at_least_one")]
    pub max_iter: usize,
    /// FISTA stops when the relative parameter change falls below this.
    pub tolerance: f32,
    /// Where Adam runs: `cpu` (default, the fused CPU solver), `cuda` or
    /// `cuda:N` (needs a build with the `cuda` feature; docs/GPU.md).
    pub device: String,
    /// `f32` (default, the paper) or `bf16` products (Adam on the CPU).
    pub precision: Precision,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            solver: Solver::Adam,
            l1: 1e-5,
            l2: 1e-5,
            learning_rate: 1e-3,
            epochs: 10,
            batch_size: 128,
            shuffle: true,
            standardize: false,
            max_iter: 300,
            tolerance: 1e-4,
            device: "cpu".into(),
            precision: Precision::F32,
        }
    }
}

impl ProbeSettings {
    /// The paper's exact behaviour (defaults with file-order batches).
    pub fn paper() -> Self {
        Self {
            shuffle: false,
            ..Self::default()
        }
    }

    /// Rejects values no solver can work with, before any work is done.
    pub fn validate(&self) -> Result<(), ProbeError> {
        let bad = |msg: String| Err(ProbeError::InvalidSettings(msg));
        if !(self.l1.is_finite() && self.l1 >= 0.0) {
            return bad(format!("l1 must be finite and >= 0, got {}", self.l1));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(format!("l2 must be finite and >= 0, got {}", self.l2));
        }
        if self.device != "cpu" && self.solver != Solver::Adam {
            return bad(format!(
                "device '{}' runs the adam solver only; use `solver: adam` or `device: cpu`",
                self.device
            ));
        }
        if self.precision == Precision::Bf16
            && (self.solver != Solver::Adam || self.device != "cpu")
        {
            return bad(format!(
                "precision bf16 is for the adam solver on the cpu (got solver {:?}, device '{}'); \
                 use `precision: f32` or `solver: adam` with `device: cpu`",
                self.solver, self.device
            ));
        }
        super::solver_device::device(&self.device).map_err(ProbeError::InvalidSettings)?;
        match self.solver {
            Solver::Adam => self.validate_adam(),
            Solver::Fista => self.validate_fista(),
        }
    }

    fn validate_adam(&self) -> Result<(), ProbeError> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ProbeError::InvalidSettings(format!(
                "learning_rate must be finite and > 0, got {}",
                self.learning_rate
            )));
        }
        if self.batch_size == 0 {
            return Err(ProbeError::InvalidSettings(
                "batch_size must be >= 1".into(),
            ));
        }
        if self.epochs == 0 {
            return Err(ProbeError::InvalidSettings(
                "epochs must be >= 1: with 0 the probe keeps its initial weights".into(),
            ));
        }
        Ok(())
    }

    fn validate_fista(&self) -> Result<(), ProbeError> {
        if self.max_iter == 0 {
            return Err(ProbeError::InvalidSettings(
                "max_iter must be >= 1: with 0 the probe keeps its initial weights".into(),
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(ProbeError::InvalidSettings(format!(
                "tolerance must be finite and >= 0, got {}",
                self.tolerance
            )));
        }
        Ok(())
    }
}

fn epochs_at_least_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    at_least_one(deserializer, "probe.epochs", "the paper's 10")
}

fn max_iter_at_least_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    at_least_one(deserializer, "probe.max_iter", "300")
}

/// A count that must be at least 1; the message reaches the user with the
/// spec's line and column.
fn at_least_one<'de, D: Deserializer<'de>>(
    deserializer: D,
    field: &str,
    default: &str,
) -> Result<usize, D::Error> {
    let value = usize::deserialize(deserializer)?;
    if value == 0 {
        return Err(serde::de::Error::custom(format!(
            "field `{field}`: must be at least 1: with 0 the probe never trains and keeps its \
             initial weights; leave the field out for the default ({default})"
        )));
    }
    Ok(value)
}

/// What the probe predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Softmax over `num_classes` outputs, labels are class indices.
    Classification { num_classes: usize },
    /// One output, MSE loss, real-valued targets.
    Regression,
}

impl Task {
    /// Number of outputs of the linear layer.
    pub fn outputs(&self) -> usize {
        match *self {
            Task::Classification { num_classes } => num_classes,
            Task::Regression => 1,
        }
    }
}
