//! The selector as the host calls it, on a small matrix whose right answer
//! is known by construction.

use sieve_core::testing::{NoProbeHost, TestProblem, TestSplit};
use sieve_core::{MatrixView, Selection, SelectionKind, TaskKind};
use sieve_selector_probeless::{class_means, open, probeless_scores};

const COLS: usize = 4;
const LABELS: [u32; 9] = [0, 1, 2, 0, 1, 2, 0, 1, 2];

/// Nine rows, three classes (row i has class i % 3), four columns:
/// 0: weak (one class-1 row is 0.5, so class 1's mean is 1/6), score 1/3;
/// 1: planted, 10 x class, class means 0, 10, 20, score 10 + 20 + 10 = 40;
/// 2: constant, score 0;
/// 3: a class-1 indicator, class means 0, 1, 0, score 2.
fn planted() -> Vec<f32> {
    let mut x = Vec::with_capacity(LABELS.len() * COLS);
    for (i, &label) in LABELS.iter().enumerate() {
        let weak = if i == 1 { 0.5 } else { 0.0 };
        let indicator = if label == 1 { 1.0 } else { 0.0 };
        x.extend([weak, 10.0 * label as f32, 5.0, indicator]);
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

#[test]
fn planted_neuron_first_and_constant_last() {
    let s = select("{}").expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    assert_eq!(s.order.to_vec(), vec![1, 3, 0, 2]);
    let scores = s.scores.to_vec();
    assert_eq!(scores.len(), COLS);
    assert_eq!(scores[0], 40.0);
    assert_eq!(scores[1], 2.0);
    assert!((scores[2] - 1.0 / 3.0).abs() < 1e-6, "{scores:?}");
    assert_eq!(scores[3], 0.0);
    assert!(s.cutoffs.is_empty());
    assert!(s.notes.contains("3 class means"), "{}", s.notes);
}

#[test]
fn deterministic_and_ties_go_to_the_lower_index() {
    assert_eq!(select("{}").unwrap().order, select(" ").unwrap().order);
    // Every column constant: all scores tie, the order is the identity.
    let x = vec![1.0f32; LABELS.len() * COLS];
    let s = select_on("{}", &x, &LABELS, TaskKind::Classification, &[]).unwrap();
    assert_eq!(s.order.to_vec(), vec![0, 1, 2, 3]);
}

#[test]
fn classes_without_rows_are_skipped() {
    let x = planted();
    let view = MatrixView::new(&x, LABELS.len(), COLS).unwrap();
    let means = class_means(&view, &LABELS, 5).unwrap();
    assert!(means[3].is_none() && means[4].is_none());
    assert_eq!(means[1].as_ref().unwrap()[1], 10.0);
    assert_eq!(probeless_scores(&means, COLS)[1], 40.0);
}

#[test]
fn regression_bad_labels_bad_values_and_params_are_clear_errors() {
    let x = planted();
    let targets = vec![0.5f32; LABELS.len()];
    let err = select_on("{}", &x, &[], TaskKind::Regression, &targets).expect_err("regression");
    assert!(
        err.contains("probeless") && err.contains("classification"),
        "{err}"
    );

    let mut labels = LABELS;
    labels[4] = 3;
    let err = select_on("{}", &x, &labels, TaskKind::Classification, &[]).expect_err("label");
    assert!(err.contains("row 4 has label 3"), "{err}");

    let mut nan = planted();
    nan[2 * COLS + 1] = f32::NAN;
    let err = select_on("{}", &nan, &LABELS, TaskKind::Classification, &[]).expect_err("NaN");
    assert!(err.contains("[2, 1]"), "{err}");

    let err = open(r#"{"threshold": 1}"#).expect_err("unknown field");
    assert!(
        err.contains("probeless") && err.contains("threshold"),
        "{err}"
    );
    assert!(open("[]").is_err());
}
