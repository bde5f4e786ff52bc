//! The selector as the host calls it, on a small matrix whose right answer
//! is known by construction.

use sieve_core::testing::{NoProbeHost, TestProblem, TestSplit};
use sieve_core::{Selection, SelectionKind, TaskKind};
use sieve_selector_selectivity::{open, Aggregate, Params};

const COLS: usize = 4;
const LABELS: [u32; 9] = [0, 1, 2, 0, 1, 2, 0, 1, 2];

/// Nine rows, three classes (row i has class i % 3), four columns:
/// 0: weak, one class-1 row is 0.5: range 0.5, class 1 mean 1/6 vs rest 0,
///    selectivity (1/6) / 0.5 = 1/3 (0 for the other classes' best: class 0
///    vs rest is |0 - 1/12| / 0.5 = 1/6);
/// 1: planted class-1 detector (1 on class 1, else 0): selectivity 1;
/// 2: constant: 0;
/// 3: 10 x class, range 20: class 0 vs rest |0 - 15| / 20 = 0.75, class 1
///    |10 - 10| = 0, class 2 0.75: max 0.75.
fn planted() -> Vec<f32> {
    let mut x = Vec::with_capacity(LABELS.len() * COLS);
    for (i, &label) in LABELS.iter().enumerate() {
        let weak = if i == 1 { 0.5 } else { 0.0 };
        let detector = if label == 1 { 1.0 } else { 0.0 };
        x.extend([weak, detector, 5.0, 10.0 * label as f32]);
    }
    x
}

/// The selection of `params`; the selector never trains a probe, so the
/// host refuses.
fn select_on(
    params: &str,
    x: &[f32],
    labels: &[u32],
    task: TaskKind,
    targets: &[f32],
) -> Result<Selection, String> {
    let classes = if task == TaskKind::Classification {
        3
    } else {
        0
    };
    let problem = TestProblem::on_split(task, COLS, TestSplit { x, labels, targets }, classes);
    problem.select(&open(params)?, &NoProbeHost)
}

fn select(params: &str) -> Result<Selection, String> {
    select_on(params, &planted(), &LABELS, TaskKind::Classification, &[])
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn planted_detector_first_and_constant_last() {
    let s = select("{}").expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    assert_eq!(s.order.to_vec(), vec![1, 3, 0, 2]);
    let scores = s.scores.to_vec();
    assert!(close(&scores, &[1.0, 0.75, 1.0 / 3.0, 0.0]), "{scores:?}");
    assert!(s.notes.contains("max over classes"), "{}", s.notes);
}

#[test]
fn mean_aggregate_averages_the_classes() {
    // Column 1: class 1 gives 1, classes 0 and 2 give |0 - 0.5| / 1 = 0.5,
    // mean 2/3; column 3: (0.75 + 0 + 0.75) / 3 = 0.5; column 0: class 0
    // and 2 give 1/6, class 1 gives 1/3: mean 2/9.
    let s = select(r#"{"aggregate": "mean"}"#).expect("select");
    assert_eq!(s.order.to_vec(), vec![1, 3, 0, 2]);
    assert!(
        close(&s.scores, &[2.0 / 3.0, 0.5, 2.0 / 9.0, 0.0]),
        "{:?}",
        s.scores
    );
}

#[test]
fn params_parse_and_reject_unknown_values() {
    assert_eq!(open("{}").unwrap().params, Params::default());
    assert_eq!(open(" ").unwrap().params.aggregate, Aggregate::Max);
    let err = open(r#"{"aggregate": "median"}"#).expect_err("bad value");
    assert!(
        err.contains("selectivity") && err.contains("median"),
        "{err}"
    );
    let err = open(r#"{"agregate": "max"}"#).expect_err("unknown");
    assert!(err.contains("agregate"), "{err}");
}

#[test]
fn regression_and_bad_values_are_clear_errors() {
    let x = planted();
    let targets = vec![0.5f32; LABELS.len()];
    let err = select_on("{}", &x, &[], TaskKind::Regression, &targets).expect_err("regression");
    assert!(
        err.contains("selectivity") && err.contains("classification"),
        "{err}"
    );
    let mut inf = planted();
    inf[3 * COLS + 2] = f32::INFINITY;
    let err = select_on("{}", &inf, &LABELS, TaskKind::Classification, &[]).expect_err("inf");
    assert!(err.contains("[3, 2]"), "{err}");
    // Deterministic: the same input gives the same order.
    assert_eq!(select("{}").unwrap().order, select("{}").unwrap().order);
}
