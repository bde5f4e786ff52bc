//! The selector as the host calls it, on small matrices whose right answer
//! is known by construction, and the AP against a from-scratch reference.

use sieve_core::testing::{NoProbeHost, TestProblem, TestRng as Rng};
use sieve_core::{Selection, SelectionKind, TaskKind};
use sieve_selector_ap::{average_precisions, open, Params, Reduce};

/// The selection of `params` on `x`; the selector never trains a probe,
/// so the host refuses. Regression gets constant targets (it must fail).
fn select_on(
    params: &str,
    x: &[f32],
    cols: usize,
    labels: &[u32],
    num_classes: u32,
    task: TaskKind,
) -> Result<Selection, String> {
    let targets = vec![0.5f32; x.len() / cols];
    let problem = if task == TaskKind::Regression {
        TestProblem::regression(x, cols, &targets)
    } else {
        TestProblem::classification(x, cols, labels, num_classes)
    };
    problem.select(&open(params)?, &NoProbeHost)
}

const COLS: usize = 5;

/// Twelve rows, three classes (row i has class i % 3), five columns:
/// 0: noise;
/// 1: planted class-1 detector (1 + a little noise on class 1, small
///    noise elsewhere): AP 1 for class 1;
/// 2: constant: one tie block, AP = 1/3 for every class and sign;
/// 3: falls to -1 on class 2, else 0: AP(-a) = 1 for class 2;
/// 4: 0.01 * class: below the default zero_below, so constant after
///    zeroing (1/3); with zero_below 0 it detects class 2 perfectly.
fn planted() -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(3);
    let labels: Vec<u32> = (0..12).map(|i| i % 3).collect();
    let mut x = Vec::new();
    for &label in &labels {
        let detector = if label == 1 { 1.0 } else { 0.0 } + 0.1 * rng.uniform();
        let drop = if label == 2 { -1.0 } else { 0.0 };
        x.extend([rng.uniform(), detector, 5.0, drop, 0.01 * label as f32]);
    }
    (x, labels)
}

fn select(params: &str) -> Result<Selection, String> {
    let (x, labels) = planted();
    select_on(params, &x, COLS, &labels, 3, TaskKind::Classification)
}

/// scikit-learn's AP computed from scratch: for every distinct threshold,
/// precision and recall of "score >= threshold", recall steps times
/// precision.
fn reference_ap(scores: &[f32], positive: &[bool]) -> f64 {
    let mut thresholds: Vec<f32> = scores.to_vec();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let total_pos = positive.iter().filter(|&&p| p).count() as f64;
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for t in thresholds {
        let chosen: Vec<bool> = scores
            .iter()
            .zip(positive)
            .filter(|(s, _)| **s >= t)
            .map(|(_, &p)| p)
            .collect();
        let tp = chosen.iter().filter(|&&p| p).count() as f64;
        let recall = tp / total_pos;
        ap += (recall - prev_recall) * tp / chosen.len() as f64;
        prev_recall = recall;
    }
    ap
}

#[test]
fn matches_scikit_learn_examples_and_a_from_scratch_reference() {
    // scikit-learn's documented example: 0.8333...
    let (up, _) = average_precisions(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1], &[2, 2], false);
    assert!((up[1] - 5.0 / 6.0).abs() < 1e-12, "{up:?}");
    // A tie block counts once, at its precision after the whole block.
    let (up, down) = average_precisions(&[0.5, 0.5, 0.5, 0.1], &[1, 0, 1, 0], &[2, 2], true);
    assert!((up[1] - 2.0 / 3.0).abs() < 1e-12, "{up:?}");
    // Negated: 0.1 (a class-0 row) first, then the block of three.
    // Class 0: 1/2 * 1/1 after it, 1/2 * 2/4 after the block: 0.75.
    assert!((down[0] - 0.75).abs() < 1e-12, "{down:?}");

    // Random scores with many ties, four classes, both signs.
    let mut rng = Rng::new(11);
    let n = 300;
    let labels: Vec<u32> = (0..n).map(|_| (rng.next_u64() % 4) as u32).collect();
    let scores: Vec<f32> = (0..n)
        .map(|_| ((rng.uniform() * 6.0).round() / 2.0).max(0.0))
        .collect();
    let mut positives = vec![0usize; 4];
    labels.iter().for_each(|&l| positives[l as usize] += 1);
    let (up, down) = average_precisions(&scores, &labels, &positives, true);
    let negated: Vec<f32> = scores.iter().map(|s| -s).collect();
    for c in 0..4u32 {
        let positive: Vec<bool> = labels.iter().map(|&l| l == c).collect();
        let (a, b) = (
            reference_ap(&scores, &positive),
            reference_ap(&negated, &positive),
        );
        assert!(
            (up[c as usize] - a).abs() < 1e-12,
            "class {c}: {} vs {a}",
            up[c as usize]
        );
        assert!(
            (down[c as usize] - b).abs() < 1e-12,
            "class {c}: {} vs {b}",
            down[c as usize]
        );
    }
}

#[test]
fn planted_detectors_first_and_constant_columns_last() {
    let s = select("{}").expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    let order = s.order.to_vec();
    assert_eq!(order, vec![1, 3, 0, 2, 4]);
    let scores = s.scores.to_vec();
    assert_eq!(&scores[..2], &[1.0, 1.0]);
    assert!(scores[2] > 1.0 / 3.0 && scores[2] < 1.0, "{scores:?}");
    assert!((scores[3] - 1.0 / 3.0).abs() < 1e-6 && (scores[4] - 1.0 / 3.0).abs() < 1e-6);
    assert!(s.cutoffs.is_empty());
    assert!(s.notes.contains("max over 3 classes"), "{}", s.notes);
}

#[test]
fn one_sign_and_no_threshold_change_the_answer() {
    // Without the negated activation, the falling neuron loses its AP of 1.
    let s = select(r#"{"both_signs": false}"#).expect("select");
    assert_eq!(s.order[0], 1);
    assert!(s.scores[1] < 1.0);
    assert_ne!(s.order[1], 3);
    // Without zeroing, column 4 (0.01 * class) detects class 2 perfectly.
    let s = select(r#"{"zero_below": 0}"#).expect("select");
    assert_eq!(&s.order[..3], &[1, 3, 4]);
    // The mean over classes: the constant column still scores 1/3.
    let s = select(r#"{"reduce": "mean"}"#).expect("select");
    let pos = s.order.iter().position(|&j| j == 2).unwrap();
    assert!((s.scores[pos] - 1.0 / 3.0).abs() < 1e-6);
}

#[test]
fn planted_neuron_beats_noise_on_a_larger_matrix() {
    let (rows, cols, planted) = (600, 40, 17);
    let mut rng = Rng::new(5);
    let labels: Vec<u32> = (0..rows).map(|_| (rng.next_u64() % 5) as u32).collect();
    let mut x = Vec::with_capacity(rows * cols);
    for &label in &labels {
        for j in 0..cols {
            x.push(match j {
                _ if j == planted => f32::from(label == 2) + 0.3 * rng.uniform(),
                0 => 1.0, // constant: the least informative
                _ => rng.uniform(),
            });
        }
    }
    let s = select_on("{}", &x, cols, &labels, 5, TaskKind::Classification).expect("select");
    let order = s.order.to_vec();
    assert_eq!(order[0], planted as u32);
    assert_eq!(*order.last().unwrap(), 0);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..cols as u32).collect::<Vec<_>>(),
        "a permutation"
    );
    let again = select_on("{}", &x, cols, &labels, 5, TaskKind::Classification).unwrap();
    assert_eq!(again.order, s.order, "deterministic");
}

#[test]
fn params_parse_and_reject_bad_values() {
    assert_eq!(open("{}").unwrap().params, Params::default());
    let p = open(r#"{"zero_below": 0.2, "reduce": "mean", "both_signs": false}"#)
        .unwrap()
        .params;
    assert_eq!(
        (p.zero_below, p.reduce, p.both_signs),
        (0.2, Reduce::Mean, false)
    );
    for (json, needle) in [
        (r#"{"reduce": "median"}"#, "median"),
        (r#"{"zero_below": -1}"#, "zero_below"),
        (r#"{"zero-below": 1}"#, "zero-below"),
        (r#"{"both_signs": 1}"#, "parameter `both_signs`"),
        ("[]", "invalid"),
    ] {
        let err = open(json).expect_err(json);
        assert!(
            err.contains("selector 'ap'") && err.contains(needle),
            "{err}"
        );
    }
}

#[test]
fn regression_bad_labels_and_bad_values_are_clear_errors() {
    let (x, labels) = planted();
    let err = select_on("{}", &x, COLS, &[], 0, TaskKind::Regression).expect_err("regression");
    assert!(
        err.contains("'ap'") && err.contains("classification"),
        "{err}"
    );
    let mut bad = labels.clone();
    bad[4] = 3;
    let err = select_on("{}", &x, COLS, &bad, 3, TaskKind::Classification).expect_err("label");
    assert!(err.contains("row 4 has label 3"), "{err}");
    let mut nan = x.clone();
    nan[2 * COLS + 1] = f32::NAN;
    let err = select_on("{}", &nan, COLS, &labels, 3, TaskKind::Classification).expect_err("NaN");
    assert!(err.contains("[2, 1]"), "{err}");
    // One class only: nothing to score, every score 0, identity order.
    let one = vec![0u32; labels.len()];
    let s = select_on("{}", &x, COLS, &one, 1, TaskKind::Classification).unwrap();
    assert_eq!(s.order.to_vec(), vec![0, 1, 2, 3, 4]);
}

/// Realistic size: 5,000 rows x 2,688 columns, 45 classes. Run with
/// `cargo test --release -p sieve-selector-ap -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_on_a_realistic_size() {
    let (rows, cols) = (5000, 2688);
    let mut rng = Rng::new(1);
    let labels: Vec<u32> = (0..rows).map(|_| (rng.next_u64() % 45) as u32).collect();
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.uniform()).collect();
    let start = std::time::Instant::now();
    let s = select_on("{}", &x, cols, &labels, 45, TaskKind::Classification).unwrap();
    eprintln!("ap: {rows} x {cols}, 45 classes: {:.2?}", start.elapsed());
    assert_eq!(s.order.len(), cols);
}
