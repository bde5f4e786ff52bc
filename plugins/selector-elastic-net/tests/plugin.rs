//! The selector as the host calls it, with a fake probe host that returns
//! fixed weights (the real probe is tested in the runner).

use sieve_core::testing::{FixedProbeHost, TestProblem};
use sieve_core::{Selection, SelectionKind};
use sieve_selector_elastic_net::{open, Params};

const ROWS: usize = 6;
const COLS: usize = 4;

/// Runs `select` of the selector with `params` against `host`.
fn select(params: &str, host: &FixedProbeHost) -> Result<Selection, String> {
    let x = vec![0.5f32; ROWS * COLS];
    let labels = [0u32, 1, 2, 0, 1, 2];
    let problem = TestProblem::classification(&x, COLS, &labels, 3).with_seed(0);
    problem.select(&open(params)?, host)
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
    let host = FixedProbeHost::new(three_class_weights(), 3);
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
    assert!(s.notes.contains("probe: fixed (test host)"), "{}", s.notes);
}

#[test]
fn probe_settings_and_training_data_reach_the_host() {
    let host = FixedProbeHost::new(three_class_weights(), 3);
    select("{}", &host).expect("defaults");
    select(r#"{"probe": {"l1": 0.001}}"#, &host).expect("override");
    let asked = host.requests();
    let first = &asked[0];
    assert_eq!((first.rows, first.cols, first.labels), (ROWS, COLS, ROWS));
    assert_eq!((first.num_classes, first.settings_json.as_str()), (3, "{}"));
    assert_eq!(asked[1].settings_json, r#"{"l1":0.001}"#);
}

#[test]
fn default_stride_gives_one_cutoff_per_step() {
    let host = FixedProbeHost::new(three_class_weights(), 3);
    let s = select("{}", &host).expect("select");
    assert_eq!(
        s.cutoffs.len(),
        1001 + 1,
        "1001 steps and the appended tail"
    );
}

#[test]
fn host_failures_and_bad_weights_are_errors() {
    let failing = FixedProbeHost::failing("solver diverged");
    let err = select("{}", &failing).expect_err("host error");
    assert!(
        err.contains("elastic-net") && err.contains("solver diverged"),
        "{err}"
    );

    let wrong_width = FixedProbeHost::new(vec![1.0; 3 * 5], 3);
    let err = select("{}", &wrong_width).expect_err("wrong width");
    assert!(err.contains("5 features"), "{err}");

    let mut nan = three_class_weights();
    nan[6] = f32::NAN;
    let err = select("{}", &FixedProbeHost::new(nan, 3)).expect_err("NaN");
    assert!(err.contains("[1, 2]"), "{err}");
}
