//! The selector as the host calls it, with a fake probe host that returns
//! fixed weights (the real probe is tested in the runner).

use std::sync::Mutex;

use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use sieve_core::{
    lend_probe_host, FeatureId, MatrixView, ProbeHost, ProbeWeights, SelectionKind, SelectorInput,
    SelectorPlugin, TaskKind,
};
use sieve_selector_elastic_net::{open, Params};

/// What the host was asked: rows, columns, labels, classes, settings.
type Request = (usize, usize, usize, u32, String);

/// Returns `weights` as the trained probe and remembers what it was asked.
struct FakeHost {
    weights: Result<Vec<f32>, String>,
    outputs: u32,
    asked: Mutex<Vec<Request>>,
}

impl FakeHost {
    fn new(weights: Vec<f32>, outputs: u32) -> Self {
        FakeHost {
            weights: Ok(weights),
            outputs,
            asked: Mutex::new(Vec::new()),
        }
    }
}

impl ProbeHost for FakeHost {
    fn train_probe(
        &self,
        x: MatrixView<'_>,
        labels: RSlice<'_, u32>,
        _targets: RSlice<'_, f32>,
        num_classes: u32,
        settings_json: RStr<'_>,
    ) -> RResult<ProbeWeights, RString> {
        let asked = (
            x.rows(),
            x.cols(),
            labels.len(),
            num_classes,
            settings_json.to_string(),
        );
        self.asked.lock().expect("lock").push(asked);
        match &self.weights {
            Ok(w) => RResult::ROk(ProbeWeights {
                weights: w.clone().into(),
                bias: vec![0.0; self.outputs as usize].into(),
                outputs: self.outputs,
                features: (w.len() / self.outputs as usize) as u32,
                solver: "fake".into(),
            }),
            Err(e) => RResult::RErr(e.as_str().into()),
        }
    }
}

const ROWS: usize = 6;
const COLS: usize = 4;

/// Runs `select` of the selector with `params` against `host`.
fn select(params: &str, host: &FakeHost) -> Result<sieve_core::Selection, String> {
    let x = vec![0.5f32; ROWS * COLS];
    let labels = [0u32, 1, 2, 0, 1, 2];
    let features: Vec<FeatureId> = (0..COLS as u32)
        .map(|neuron| FeatureId { layer: 1, neuron })
        .collect();
    let view = MatrixView::new(&x, ROWS, COLS).expect("shape");
    let input = SelectorInput {
        task: TaskKind::Classification,
        train: view,
        dev: view,
        train_labels: RSlice::from_slice(&labels),
        dev_labels: RSlice::from_slice(&labels),
        train_targets: RSlice::from_slice(&[]),
        dev_targets: RSlice::from_slice(&[]),
        num_classes: 3,
        features: RSlice::from_slice(&features),
        seed: 0,
    };
    open(params)?.select(&input, &lend_probe_host(host))
}

/// Three classes over four features; feature 2 has no weight.
fn three_class_weights() -> Vec<f32> {
    vec![
        0.1, -3.0, 0.0, 0.2, //
        2.0, 0.0, 0.0, -0.1, //
        0.0, 0.5, 0.0, 1.5,
    ]
}

#[test]
fn params_default_parse_and_reject_unknown_fields() {
    assert_eq!(open("{}").expect("defaults").params, Params::default());
    assert_eq!(open(" ").expect("blank").params.stride, 1000);
    let p = open(r#"{"stride": 100, "probe": {"l1": 0.001, "l2": 0}}"#)
        .expect("valid")
        .params;
    assert_eq!(p.stride, 100);
    assert_eq!(p.probe.len(), 2);
    let err = open(r#"{"strides": 10}"#).err().expect("unknown field");
    assert!(
        err.contains("elastic-net") && err.contains("strides"),
        "{err}"
    );
    let err = open(r#"{"stride": 0}"#).err().expect("zero stride");
    assert!(err.contains("stride"), "{err}");
    let err = open(r#"{"probe": "lasso"}"#)
        .err()
        .expect("probe not an object");
    assert!(err.contains("probe must be an object"), "{err}");
    assert!(open(r#"{"stride": -1}"#).is_err());
}

#[test]
fn select_ranks_every_column_with_cutoffs_and_mass() {
    let host = FakeHost::new(three_class_weights(), 3);
    let s = select(r#"{"stride": 4}"#, &host).expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    // p=0 takes each class's heaviest: 1 (mass 3.5), 0 (2.1), 3 (1.8);
    // later fractions add nothing new until nothing is left but feature 2,
    // which no class weighs and so comes last.
    assert_eq!(s.order.to_vec(), vec![1, 0, 3, 2]);
    assert_eq!(s.cutoffs.to_vec(), vec![3, 3, 3, 3, 3, 4]);
    let scores: Vec<f32> = s.scores.to_vec();
    assert_eq!(scores, vec![3.5, 2.1, 1.8, 0.0]);
    assert!(s.notes.contains("4 neurons ranked"), "{}", s.notes);
    assert!(s.notes.contains("probe: fake"), "{}", s.notes);
}

#[test]
fn probe_settings_and_training_data_reach_the_host() {
    let host = FakeHost::new(three_class_weights(), 3);
    select("{}", &host).expect("defaults");
    select(r#"{"probe": {"l1": 0.001}}"#, &host).expect("override");
    let asked = host.asked.lock().expect("lock").clone();
    assert_eq!(asked[0], (ROWS, COLS, ROWS, 3, "{}".to_string()));
    assert_eq!(asked[1].4, r#"{"l1":0.001}"#);
}

#[test]
fn default_stride_gives_one_cutoff_per_step() {
    let host = FakeHost::new(three_class_weights(), 3);
    let s = select("{}", &host).expect("select");
    assert_eq!(
        s.cutoffs.len(),
        1001 + 1,
        "1001 steps and the appended tail"
    );
}

#[test]
fn host_failures_and_bad_weights_are_errors() {
    let mut failing = FakeHost::new(Vec::new(), 3);
    failing.weights = Err("solver diverged".into());
    let err = select("{}", &failing).expect_err("host error");
    assert!(
        err.contains("elastic-net") && err.contains("solver diverged"),
        "{err}"
    );

    let wrong_width = FakeHost::new(vec![1.0; 3 * 5], 3);
    let err = select("{}", &wrong_width).expect_err("wrong width");
    assert!(err.contains("5 features"), "{err}");

    let mut nan = three_class_weights();
    nan[6] = f32::NAN;
    let err = select("{}", &FakeHost::new(nan, 3)).expect_err("NaN");
    assert!(err.contains("[1, 2]"), "{err}");
}
