//! Downstream classifiers trained on the few selected features: how much of
//! the task a non-linear (or differently regularised) model recovers from the
//! same columns the selector picked.
//!
//! The random forest's trees come from smartcore (fitted in parallel, one
//! seeded single-tree forest each). Logistic regression is the project's own
//! multinomial probe without L1 (smartcore's L-BFGS did not finish in 400 s
//! on the WSJ POS data), the linear SVM our own one-vs-rest Pegasos
//! (smartcore's SVC is an SMO solver whose cost grows with the square of the
//! rows) and kNN our own brute force (see `knn.rs`). Features are standardised
//! with the training mean and standard deviation before every classifier.

mod data;
mod forest;
mod knn;
mod svm;
#[cfg(test)]
mod tests;

use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::probe::{train_probe, ProbeSettings, Task};

pub use data::Standardized;

/// A downstream classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierKind {
    LogisticRegression,
    LinearSvm,
    RandomForest,
    Knn,
}

impl ClassifierKind {
    /// Every classifier, in report order.
    pub const ALL: [ClassifierKind; 4] = [
        ClassifierKind::LogisticRegression,
        ClassifierKind::LinearSvm,
        ClassifierKind::RandomForest,
        ClassifierKind::Knn,
    ];

    /// The kebab-case name used in specs and reports.
    pub fn name(self) -> &'static str {
        match self {
            ClassifierKind::LogisticRegression => "logistic-regression",
            ClassifierKind::LinearSvm => "linear-svm",
            ClassifierKind::RandomForest => "random-forest",
            ClassifierKind::Knn => "knn",
        }
    }
}

/// The `downstream` section of a spec.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamSpec {
    /// Classifiers to train; all four by default.
    pub classifiers: Vec<ClassifierKind>,
    /// Training rows above this are replaced by a seeded subsample.
    pub max_train_rows: usize,
    /// Neighbours for kNN.
    pub knn_k: usize,
    /// Trees in the random forest.
    pub trees: usize,
    /// Depth limit of the forest's trees (none: grow until pure).
    pub max_depth: Option<u16>,
    /// Features tried per split (none: smartcore's default, sqrt(features)).
    pub forest_features: Option<usize>,
    /// SVM cost C (Pegasos lambda = 1 / (C * rows)).
    pub svm_c: f64,
    /// Passes over the training rows per one-vs-rest SVM.
    pub svm_epochs: usize,
    /// L2 penalty of the logistic regression (the probe's `l2`).
    pub lr_alpha: f64,
}

impl Default for DownstreamSpec {
    fn default() -> Self {
        Self {
            classifiers: ClassifierKind::ALL.to_vec(),
            max_train_rows: 20_000,
            knn_k: 5,
            trees: 100,
            max_depth: None,
            forest_features: None,
            svm_c: 1.0,
            svm_epochs: 10,
            lr_alpha: 1e-5,
        }
    }
}

impl DownstreamSpec {
    /// Settings a classifier could not run with, named by their spec field.
    pub fn check_values(&self) -> Result<(), String> {
        let field = |name: &str, what: &str| Err(format!("field `downstream.{name}`: {what}"));
        if self.classifiers.is_empty() {
            return field(
                "classifiers",
                "name at least one of logistic-regression, linear-svm, random-forest, knn \
                 (or remove the section)",
            );
        }
        for (i, kind) in self.classifiers.iter().enumerate() {
            if self.classifiers[..i].contains(kind) {
                return field("classifiers", &format!("'{}' is listed twice", kind.name()));
            }
        }
        if self.max_train_rows == 0 {
            return field("max_train_rows", "must be at least 1");
        }
        if self.knn_k == 0 {
            return field("knn_k", "must be at least 1");
        }
        if self.trees == 0 {
            return field("trees", "must be at least 1");
        }
        if self.max_depth == Some(0) || self.forest_features == Some(0) {
            return field(
                "max_depth/forest_features",
                "must be at least 1 (or left out for the default)",
            );
        }
        if !(self.svm_c > 0.0 && self.svm_c.is_finite()) || self.svm_epochs == 0 {
            return field(
                "svm_c/svm_epochs",
                "svm_c must be > 0 and svm_epochs at least 1",
            );
        }
        if !(self.lr_alpha >= 0.0 && self.lr_alpha.is_finite()) {
            return field("lr_alpha", "must be a finite number >= 0");
        }
        Ok(())
    }
}

/// One classifier's result on one feature set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownstreamScore {
    pub classifier: ClassifierKind,
    pub features: usize,
    pub train_rows: usize,
    /// Training plus prediction time.
    pub seconds: f64,
    /// Dev accuracy.
    pub dev: f64,
    /// Test accuracy.
    pub test: f64,
    /// Which implementation ran and with what settings.
    pub note: String,
}

/// Train `kind` on `train` and report dev and test accuracy.
///
/// `x_*` are row-major `[rows, features]` f32; training labels are class
/// indices below `num_classes`. Dev and test labels at or above it (classes
/// unseen in training) are allowed and always count as wrong.
#[allow(clippy::too_many_arguments)]
pub fn train_and_score(
    kind: ClassifierKind,
    spec: &DownstreamSpec,
    features: usize,
    num_classes: usize,
    train: (&[f32], &[u32]),
    dev: (&[f32], &[u32]),
    test: (&[f32], &[u32]),
    seed: u64,
) -> anyhow::Result<DownstreamScore> {
    if features == 0 {
        bail!("downstream classifiers need at least one feature");
    }
    if num_classes < 2 {
        bail!("downstream classifiers need at least two classes, got {num_classes}");
    }
    let train_rows = data::check_split("train", train, features, Some(num_classes))?;
    data::check_split("dev", dev, features, None)?;
    data::check_split("test", test, features, None)?;
    if train_rows == 0 {
        bail!("the training split is empty");
    }
    let started = Instant::now();
    let (train_x, train_y) = data::subsample(train, features, spec.max_train_rows, seed);
    let scaler = data::Scaler::fit(&train_x, features);
    let train_z = scaler.apply(&train_x);
    let dev_z = scaler.apply(dev.0);
    let test_z = scaler.apply(test.0);
    let rows = train_y.len();

    let (dev_pred, test_pred, note) = match kind {
        ClassifierKind::LogisticRegression => {
            // smartcore's LogisticRegression (L-BFGS, up to 1000 iterations,
            // no cap exposed) did not finish within 400 s on 20,000 rows x
            // 241 features x 42 classes; the project's own multinomial probe
            // (Adam, L2 only) trains in seconds.
            // At least ~2,000 Adam steps, so small training sets converge too
            // (10 epochs of 20,000 rows are ~1,560 steps; unchanged there).
            let batch = ProbeSettings::default().batch_size;
            let epochs = 10usize.max((2000 * batch).div_ceil(rows.max(1)));
            let settings = ProbeSettings {
                epochs,
                l1: 0.0,
                l2: spec.lr_alpha as f32,
                standardize: false,
                shuffle: true,
                ..ProbeSettings::default()
            };
            let z: Vec<f32> = train_z.iter().map(|&v| v as f32).collect();
            let probe = train_probe(
                &z,
                rows,
                features,
                &train_y,
                &[],
                Task::Classification { num_classes },
                &settings,
                seed,
            )
            .map_err(|e| anyhow::anyhow!("logistic regression probe: {e}"))?;
            let predict = |z: &[f64]| {
                let z: Vec<f32> = z.iter().map(|&v| v as f32).collect();
                probe.predict_classes(&z, z.len() / features)
            };
            (
                predict(&dev_z),
                predict(&test_z),
                format!(
                    "ours: the project's multinomial probe (Adam, {} epochs, L2 {}, no L1)",
                    settings.epochs, spec.lr_alpha
                ),
            )
        }
        ClassifierKind::LinearSvm => {
            if spec.svm_c <= 0.0 || spec.svm_epochs == 0 {
                bail!("linear-svm needs svm_c > 0 and svm_epochs > 0");
            }
            let model = svm::LinearSvm::fit(
                &train_z,
                &train_y,
                features,
                num_classes,
                spec.svm_c,
                spec.svm_epochs,
                seed,
            );
            (
                model.predict(&dev_z),
                model.predict(&test_z),
                format!(
                    "ours: one-vs-rest Pegasos linear SVM (C {}, {} epochs)",
                    spec.svm_c, spec.svm_epochs
                ),
            )
        }
        ClassifierKind::RandomForest => {
            if spec.trees == 0 {
                bail!("random-forest needs at least one tree");
            }
            let forest = forest::Forest::fit(
                &train_z,
                &train_y,
                features,
                num_classes,
                spec.trees,
                spec.max_depth,
                spec.forest_features,
                seed,
            )?;
            (
                forest.predict(&dev_z)?,
                forest.predict(&test_z)?,
                format!(
                    "smartcore RandomForestClassifier trees in parallel ({} trees, max depth {})",
                    spec.trees,
                    spec.max_depth.map_or("none".to_string(), |d| d.to_string())
                ),
            )
        }
        ClassifierKind::Knn => {
            if spec.knn_k == 0 {
                bail!("knn needs knn_k > 0");
            }
            let model = knn::Knn::new(&train_z, &train_y, features, num_classes, spec.knn_k);
            (
                model.predict(&dev_z),
                model.predict(&test_z),
                format!("{} (k {}, Euclidean)", knn::IMPLEMENTATION, spec.knn_k),
            )
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(DownstreamScore {
        classifier: kind,
        features,
        train_rows: rows,
        seconds,
        dev: accuracy(&dev_pred, dev.1).context("dev predictions")?,
        test: accuracy(&test_pred, test.1).context("test predictions")?,
        note,
    })
}

/// Share of correct predictions (0 for an empty split).
fn accuracy(predicted: &[u32], labels: &[u32]) -> anyhow::Result<f64> {
    if predicted.len() != labels.len() {
        bail!(
            "{} predictions for {} labels",
            predicted.len(),
            labels.len()
        );
    }
    if labels.is_empty() {
        return Ok(0.0);
    }
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(correct as f64 / labels.len() as f64)
}

fn dense(z: &[f64], rows: usize, features: usize) -> anyhow::Result<DenseMatrix<f64>> {
    DenseMatrix::new(rows, features, z.to_vec(), false)
        .map_err(|e| anyhow::anyhow!("building a smartcore matrix: {e}"))
}
