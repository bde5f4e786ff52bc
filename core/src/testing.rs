//! Helpers for testing a selector plugin on hand-made data, without the
//! runner: what every selector crate's tests need, and what a third party
//! writing a selector against this crate alone needs too.
//!
//! ```
//! use sieve_core::testing::{NoProbeHost, TestProblem};
//! # use sieve_core::{ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin};
//! # struct FirstColumn;
//! # impl SelectorPlugin for FirstColumn {
//! #     fn select(&self, input: &SelectorInput<'_>, _: &ProbeHostRef<'_>) -> Result<Selection, String> {
//! #         Ok(Selection { kind: SelectionKind::Ranking, order: vec![0].into(),
//! #                        scores: Default::default(), cutoffs: Default::default(), notes: "".into() })
//! #     }
//! # }
//! // Four rows, two columns, two classes.
//! let x = [0.0, 1.0, 1.0, 1.0, 0.0, 2.0, 1.0, 2.0];
//! let labels = [0, 1, 0, 1];
//! let problem = TestProblem::classification(&x, 2, &labels, 2);
//! let selection = problem.select(&FirstColumn, &NoProbeHost).unwrap();
//! assert_eq!(selection.order.as_slice(), &[0]);
//! ```

use std::sync::Mutex;

use abi_stable::std_types::{RResult, RSlice, RStr, RString};

use crate::{
    lend_probe_host, FeatureId, MatrixView, ProbeHost, ProbeWeights, Selection, SelectorInput,
    SelectorPlugin, SplitMix64, TaskKind,
};

/// A probe host that refuses to train: hand it to a selector that must
/// not need a probe, and the selection fails if it asks for one.
pub struct NoProbeHost;

impl ProbeHost for NoProbeHost {
    fn train_probe(
        &self,
        _x: MatrixView<'_>,
        _labels: RSlice<'_, u32>,
        _targets: RSlice<'_, f32>,
        _num_classes: u32,
        _settings_json: RStr<'_>,
    ) -> RResult<ProbeWeights, RString> {
        RResult::RErr("this selector must not train a probe (the test's host refuses)".into())
    }
}

/// What a selector asked of a [`FixedProbeHost`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    pub rows: usize,
    pub cols: usize,
    /// Number of labels sent (one per row for classification).
    pub labels: usize,
    pub num_classes: u32,
    pub settings_json: String,
}

/// A probe host that answers every request with the same weights
/// (`[outputs, features]`, zero bias) or the same error, and records what
/// it was asked: for selectors that rank by a probe's weights, tested
/// without training one.
pub struct FixedProbeHost {
    pub weights: Result<Vec<f32>, String>,
    pub outputs: u32,
    requests: Mutex<Vec<ProbeRequest>>,
}

impl FixedProbeHost {
    pub fn new(weights: Vec<f32>, outputs: u32) -> Self {
        FixedProbeHost {
            weights: Ok(weights),
            outputs,
            requests: Mutex::new(Vec::new()),
        }
    }

    /// A host whose every training fails with `message`.
    pub fn failing(message: &str) -> Self {
        FixedProbeHost {
            weights: Err(message.to_string()),
            outputs: 0,
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<ProbeRequest> {
        self.requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl ProbeHost for FixedProbeHost {
    fn train_probe(
        &self,
        x: MatrixView<'_>,
        labels: RSlice<'_, u32>,
        _targets: RSlice<'_, f32>,
        num_classes: u32,
        settings_json: RStr<'_>,
    ) -> RResult<ProbeWeights, RString> {
        let request = ProbeRequest {
            rows: x.rows(),
            cols: x.cols(),
            labels: labels.len(),
            num_classes,
            settings_json: settings_json.to_string(),
        };
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
        match &self.weights {
            Ok(w) => RResult::ROk(ProbeWeights {
                weights: w.clone().into(),
                bias: vec![0.0; self.outputs as usize].into(),
                outputs: self.outputs,
                features: (w.len() / self.outputs.max(1) as usize) as u32,
                solver: "fixed (test host)".into(),
            }),
            Err(e) => RResult::RErr(e.as_str().into()),
        }
    }
}

/// A seeded generator for test matrices ([`SplitMix64`] underneath).
pub struct TestRng(SplitMix64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng(SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// The rows of one split: `x` row-major with the problem's column count;
/// `labels` for classification, `targets` for regression (the other one
/// empty).
#[derive(Clone, Copy, Debug)]
pub struct TestSplit<'a> {
    pub x: &'a [f32],
    pub labels: &'a [u32],
    pub targets: &'a [f32],
}

/// A selection problem on borrowed data. Its features are neurons
/// `0..cols` of layer 0; dev is train unless [`TestProblem::with_dev`]
/// says otherwise; the seed is 7 unless [`TestProblem::with_seed`].
#[derive(Clone, Copy, Debug)]
pub struct TestProblem<'a> {
    pub task: TaskKind,
    pub cols: usize,
    pub train: TestSplit<'a>,
    pub dev: TestSplit<'a>,
    pub num_classes: u32,
    pub seed: u64,
}

impl<'a> TestProblem<'a> {
    /// A problem of either task on one split (dev = train).
    pub fn on_split(task: TaskKind, cols: usize, split: TestSplit<'a>, num_classes: u32) -> Self {
        TestProblem {
            task,
            cols,
            train: split,
            dev: split,
            num_classes,
            seed: 7,
        }
    }

    pub fn classification(x: &'a [f32], cols: usize, labels: &'a [u32], num_classes: u32) -> Self {
        let split = TestSplit {
            x,
            labels,
            targets: &[],
        };
        Self::on_split(TaskKind::Classification, cols, split, num_classes)
    }

    pub fn regression(x: &'a [f32], cols: usize, targets: &'a [f32]) -> Self {
        let split = TestSplit {
            x,
            labels: &[],
            targets,
        };
        Self::on_split(TaskKind::Regression, cols, split, 0)
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_dev(mut self, dev: TestSplit<'a>) -> Self {
        self.dev = dev;
        self
    }

    /// Runs `selector` on this problem with `host` as its probe service.
    /// A matrix whose length is not a multiple of `cols` is an error.
    pub fn select(
        &self,
        selector: &impl SelectorPlugin,
        host: &impl ProbeHost,
    ) -> Result<Selection, String> {
        let features: Vec<FeatureId> = (0..self.cols as u32)
            .map(|neuron| FeatureId { layer: 0, neuron })
            .collect();
        let input = SelectorInput {
            task: self.task,
            train: self.matrix(self.train.x, "train")?,
            dev: self.matrix(self.dev.x, "dev")?,
            train_labels: RSlice::from_slice(self.train.labels),
            dev_labels: RSlice::from_slice(self.dev.labels),
            train_targets: RSlice::from_slice(self.train.targets),
            dev_targets: RSlice::from_slice(self.dev.targets),
            num_classes: self.num_classes,
            features: RSlice::from_slice(&features),
            seed: self.seed,
        };
        selector.select(&input, &lend_probe_host(host))
    }

    fn matrix(&self, x: &'a [f32], split: &str) -> Result<MatrixView<'a>, String> {
        let rows = x.len().checked_div(self.cols).unwrap_or(0);
        MatrixView::new(x, rows, self.cols).ok_or_else(|| {
            format!(
                "test {split} matrix: {} values are not rows of {} columns",
                x.len(),
                self.cols
            )
        })
    }
}

/// Whether `order` holds each of `0..n` exactly once.
pub fn is_permutation(order: &[u32], n: usize) -> bool {
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    sorted == (0..n as u32).collect::<Vec<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_stays_in_range_and_follows_the_seed() {
        let mut rng = TestRng::new(0);
        assert!((0..1000)
            .map(|_| rng.uniform())
            .all(|u| (-1.0..1.0).contains(&u)));
        let (mut a, mut b) = (TestRng::new(5), TestRng::new(5));
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn permutations_are_recognised() {
        assert!(is_permutation(&[2, 0, 1], 3));
        assert!(!is_permutation(&[0, 0, 1], 3));
        assert!(!is_permutation(&[0, 1], 3));
    }

    #[test]
    fn the_fixed_host_answers_and_records() {
        let x = [1.0f32; 6];
        let host = FixedProbeHost::new(vec![0.5; 6], 2);
        let answer = host.train_probe(
            MatrixView::new(&x, 2, 3).expect("shape"),
            RSlice::from_slice(&[0, 1]),
            RSlice::from_slice(&[]),
            2,
            RStr::from("{\"l1\":0}"),
        );
        let RResult::ROk(weights) = answer else {
            panic!("the fixed host failed")
        };
        assert_eq!((weights.outputs, weights.features), (2, 3));
        let request = &host.requests()[0];
        assert_eq!((request.rows, request.cols, request.labels), (2, 3, 2));
        assert_eq!(request.settings_json, "{\"l1\":0}");
        let failing = FixedProbeHost::failing("diverged");
        let answer = failing.train_probe(
            MatrixView::new(&x, 2, 3).expect("shape"),
            RSlice::from_slice(&[]),
            RSlice::from_slice(&[]),
            2,
            RStr::from("{}"),
        );
        assert!(matches!(answer, RResult::RErr(e) if e.as_str() == "diverged"));
    }

    #[test]
    fn the_refusing_host_refuses() {
        let x = [1.0f32];
        let result = NoProbeHost.train_probe(
            MatrixView::new(&x, 1, 1).expect("shape"),
            RSlice::from_slice(&[0]),
            RSlice::from_slice(&[]),
            1,
            RStr::from("{}"),
        );
        assert!(matches!(result, RResult::RErr(_)));
    }
}
