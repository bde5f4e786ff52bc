//! The selector as the host calls it, with a fake probe host that returns
//! fixed weights (the real probe is tested in the runner).

use sieve_core::testing::{FixedProbeHost, TestProblem};
use sieve_core::{Selection, SelectionKind};
use sieve_selector_lasso::{open, rank_by_mass, weight_mass, Params};

const ROWS: usize = 6;
const COLS: usize = 5;

fn select(params: &str, host: &FixedProbeHost) -> Result<Selection, String> {
    let x = vec![0.5f32; ROWS * COLS];
    let labels = [0u32, 1, 2, 0, 1, 2];
    let problem = TestProblem::classification(&x, COLS, &labels, 3).with_seed(0);
    problem.select(&open(params)?, host)
}

/// Three classes over five features. Masses: 0: 0.5, 1: 4.0 (the planted
/// neuron, heavy in two classes), 2: 0 (no weight: last), 3: 1.5, 4: 1.5
/// (ties with 3; the lower index first).
fn three_class_weights() -> Vec<f32> {
    vec![
        0.5, -3.0, 0.0, 0.0, 1.0, //
        0.0, 0.0, 0.0, 1.5, 0.0, //
        0.0, 1.0, 0.0, 0.0, -0.5,
    ]
}

#[test]
fn heaviest_first_ties_by_index_and_weightless_last() {
    let host = FixedProbeHost::new(three_class_weights(), 3);
    let s = select("{}", &host).expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    assert_eq!(s.order.to_vec(), vec![1, 3, 4, 0, 2]);
    assert_eq!(s.scores.to_vec(), vec![4.0, 1.5, 1.5, 0.5, 0.0]);
    assert!(s.cutoffs.is_empty());
    assert!(s.notes.contains("1 without weight"), "{}", s.notes);
    assert!(s.notes.contains("probe: fixed (test host)"), "{}", s.notes);
}

#[test]
fn reverse_is_the_bottom_baseline() {
    let host = FixedProbeHost::new(three_class_weights(), 3);
    let s = select(r#"{"reverse": true}"#, &host).expect("select");
    assert_eq!(s.order.to_vec(), vec![2, 0, 4, 3, 1]);
    assert_eq!(s.scores.to_vec(), vec![0.0, 0.5, 1.5, 1.5, 4.0]);
    assert!(s.notes.contains("bottom baseline"), "{}", s.notes);
}

#[test]
fn the_probe_is_trained_without_l2_and_with_the_given_l1() {
    let host = FixedProbeHost::new(three_class_weights(), 3);
    select("{}", &host).unwrap();
    select(r#"{"l1": 0.01, "reverse": false}"#, &host).unwrap();
    let asked = host.requests();
    let first: serde_json::Value = serde_json::from_str(&asked[0].settings_json).unwrap();
    assert_eq!(first, serde_json::json!({"l1": 1e-4, "l2": 0.0}));
    let second: serde_json::Value = serde_json::from_str(&asked[1].settings_json).unwrap();
    assert_eq!(second, serde_json::json!({"l1": 0.01, "l2": 0.0}));
}

#[test]
fn mass_ranking_functions() {
    let w = three_class_weights();
    assert_eq!(weight_mass(&w, 3, COLS), vec![0.5, 4.0, 0.0, 1.5, 1.5]);
    assert_eq!(rank_by_mass(&[1.0, 1.0, 2.0], false), vec![2, 0, 1]);
    assert_eq!(rank_by_mass(&[1.0, 1.0, 2.0], true), vec![1, 0, 2]);
}

#[test]
fn params_and_host_failures_are_clear_errors() {
    assert_eq!(open("{}").unwrap().params, Params::default());
    assert_eq!(open("").unwrap().params.l1, 1e-4);
    let err = open(r#"{"l2": 0.1}"#).expect_err("unknown field");
    assert!(err.contains("lasso") && err.contains("l2"), "{err}");
    let err = open(r#"{"l1": -1}"#).expect_err("negative");
    assert!(err.contains("l1 must be"), "{err}");
    assert!(open(r#"{"reverse": "yes"}"#).is_err());

    let failing = FixedProbeHost::failing("solver diverged");
    let err = select("{}", &failing).expect_err("host error");
    assert!(
        err.contains("lasso") && err.contains("solver diverged"),
        "{err}"
    );

    let err = select("{}", &FixedProbeHost::new(vec![1.0; 3 * 4], 3)).expect_err("width");
    assert!(err.contains("4 features"), "{err}");

    let mut nan = three_class_weights();
    nan[7] = f32::NAN;
    let err = select("{}", &FixedProbeHost::new(nan, 3)).expect_err("NaN");
    assert!(err.contains("[1, 2]"), "{err}");
}
