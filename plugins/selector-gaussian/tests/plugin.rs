//! The selector as the host calls it, on matrices whose right answer is
//! known by construction.

use sieve_core::testing::{is_permutation, NoProbeHost, TestProblem, TestRng as Rng, TestSplit};
use sieve_core::{MatrixView, Selection, SelectionKind, TaskKind};
use sieve_selector_gaussian::{gaussian_ranking, open, Labelled, Params, ScoreOn};

fn select_on(
    params: &str,
    x: &[f32],
    cols: usize,
    labels: &[u32],
    num_classes: u32,
    task: TaskKind,
    seed: u64,
) -> Result<Selection, String> {
    select_with_dev(
        params,
        (x, labels),
        (x, labels),
        cols,
        num_classes,
        task,
        seed,
    )
}

/// The selection of `params`; the selector never trains a probe, so the
/// host refuses. Regression gets constant targets (it must fail).
fn select_with_dev(
    params: &str,
    (x, labels): (&[f32], &[u32]),
    (dev_x, dev_labels): (&[f32], &[u32]),
    cols: usize,
    num_classes: u32,
    task: TaskKind,
    seed: u64,
) -> Result<Selection, String> {
    let targets = vec![0.5f32; x.len() / cols];
    let dev_targets = vec![0.5f32; dev_x.len() / cols];
    let problem = if task == TaskKind::Regression {
        TestProblem::regression(x, cols, &targets).with_dev(TestSplit {
            x: dev_x,
            labels: dev_labels,
            targets: &dev_targets,
        })
    } else {
        TestProblem::classification(x, cols, labels, num_classes).with_dev(TestSplit {
            x: dev_x,
            labels: dev_labels,
            targets: &[],
        })
    };
    problem.with_seed(seed).select(&open(params)?, &NoProbeHost)
}

const COLS: usize = 12;
const HALF_A: usize = 3; // class / 2, little noise
const COPY_A: usize = 8; // column 3 again, plus a little noise: redundant
const HALF_B: usize = 5; // class % 2, more noise: weaker on its own
const CONSTANT: usize = 11;

/// 800 rows, 4 classes. The class is `2 * a + b` for two bits: column 3
/// carries `a`, column 8 is a noisy copy of column 3, column 5 carries `b`
/// with more noise, column 11 is constant, the rest is noise. On its own
/// column 5 is the weakest of the three, yet after column 3 (or its copy)
/// it is the only one that adds information.
fn halves() -> (Vec<f32>, Vec<u32>) {
    halves_from(21, 800)
}

fn halves_from(seed: u64, rows: usize) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let labels: Vec<u32> = (0..rows).map(|_| (rng.next_u64() % 4) as u32).collect();
    let mut x = Vec::with_capacity(labels.len() * COLS);
    for &label in &labels {
        let a = (label / 2) as f32 + 0.25 * rng.uniform();
        let mut row: Vec<f32> = (0..COLS).map(|_| rng.uniform()).collect();
        row[HALF_A] = a;
        row[COPY_A] = a + 0.05 * rng.uniform();
        row[HALF_B] = (label % 2) as f32 + 0.6 * rng.uniform();
        row[CONSTANT] = 1.5;
        x.extend(row);
    }
    (x, labels)
}

#[test]
fn two_halves_of_the_class_are_picked_first() {
    let (x, labels) = halves();
    let s = select_on("{}", &x, COLS, &labels, 4, TaskKind::Classification, 1).expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    let order = s.order.to_vec();
    assert!(is_permutation(&order, COLS));
    assert!(
        order[0] == HALF_A as u32 || order[0] == COPY_A as u32,
        "{order:?}"
    );
    assert_eq!(order[1], HALF_B as u32, "{order:?}");
    assert!(s.scores.is_empty() && s.cutoffs.is_empty());
    assert!(s.notes.contains("12 chosen greedily"), "{}", s.notes);

    // The single-neuron ranking would put the redundant copy second.
    let view = MatrixView::new(&x, labels.len(), COLS).unwrap();
    let train = Labelled {
        x: view,
        labels: &labels,
    };
    let r = gaussian_ranking(train, None, 4, &Params::default(), 1).unwrap();
    let mut single: Vec<usize> = (0..COLS).collect();
    single.sort_by(|&a, &b| r.single[b].total_cmp(&r.single[a]));
    assert!(single[..2].contains(&HALF_A) && single[..2].contains(&COPY_A));
    // The two halves hold most of H(label) = ln 4 (a sixth of the rows
    // have an ambiguous second half: its noise ranges overlap).
    assert!((r.entropy - 4f64.ln()).abs() < 0.01, "{}", r.entropy);
    assert!(r.information > 0.85 * r.entropy, "{r:?}");
    // The constant column adds nothing on its own.
    assert!(r.single[CONSTANT].abs() < 1e-3, "{:?}", r.single);
}

#[test]
fn a_budget_of_one_then_single_neuron_order() {
    let (x, labels) = halves();
    let s = select_on(
        r#"{"budget": 1}"#,
        &x,
        COLS,
        &labels,
        4,
        TaskKind::Classification,
        1,
    )
    .expect("select");
    let order = s.order.to_vec();
    assert!(is_permutation(&order, COLS));
    // Greedy pick, then the single-neuron order: the copy of the first pick
    // (or the original) comes next, the carrier of the other half third.
    assert!(order[..2].contains(&(HALF_A as u32)) && order[..2].contains(&(COPY_A as u32)));
    assert_eq!(order[2], HALF_B as u32);
    assert!(s.notes.contains("1 chosen greedily"), "{}", s.notes);
}

#[test]
fn planted_neuron_first_noise_and_constant_near_the_end() {
    let (rows, cols, planted) = (1000, 30, 13);
    let mut rng = Rng::new(8);
    let labels: Vec<u32> = (0..rows).map(|_| (rng.next_u64() % 5) as u32).collect();
    let mut x = Vec::with_capacity(rows * cols);
    for &label in &labels {
        for j in 0..cols {
            x.push(match j {
                _ if j == planted => label as f32 + 0.3 * rng.uniform(),
                0 => -2.0,
                _ => rng.uniform(),
            });
        }
    }
    let s = select_on(
        r#"{"budget": 5}"#,
        &x,
        cols,
        &labels,
        5,
        TaskKind::Classification,
        3,
    )
    .unwrap();
    let order = s.order.to_vec();
    assert!(is_permutation(&order, cols));
    assert_eq!(order[0], planted as u32);
    let constant_at = order.iter().position(|&j| j == 0).unwrap();
    assert!(constant_at >= cols - 3, "{order:?}");
}

#[test]
fn same_seed_same_ranking_and_subsampling_uses_the_seed() {
    let (x, labels) = halves();
    let params = r#"{"budget": 3, "max_rows": 300}"#;
    let run =
        |seed| select_on(params, &x, COLS, &labels, 4, TaskKind::Classification, seed).unwrap();
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a.order, b.order);
    assert_eq!(a.notes, b.notes);
    assert!(a.notes.contains("300 rows"), "{}", a.notes);
    assert!(is_permutation(&c.order, COLS));
    assert_ne!(a.notes, c.notes, "another seed, another subsample");
    assert_eq!(c.order[1], HALF_B as u32);
}

#[test]
fn scored_on_dev_rows_the_halves_still_come_first() {
    let (x, labels) = halves();
    let (dev_x, mut dev_labels) = halves_from(99, 300);
    let s = select_with_dev(
        r#"{"score_on": "dev", "budget": 4}"#,
        (&x, &labels),
        (&dev_x, &dev_labels),
        COLS,
        5,
        TaskKind::Classification,
        1,
    )
    .unwrap();
    let order = s.order.to_vec();
    assert!(is_permutation(&order, COLS));
    assert!(
        order[0] == HALF_A as u32 || order[0] == COPY_A as u32,
        "{order:?}"
    );
    assert_eq!(order[1], HALF_B as u32, "{order:?}");
    assert!(s.notes.contains("on 300 dev rows"), "{}", s.notes);
    // Dev rows of a class the training rows lack are left out, and said so.
    dev_labels[0] = 4;
    dev_labels[7] = 4;
    let s = select_with_dev(
        r#"{"score_on": "dev", "budget": 2}"#,
        (&x, &labels),
        (&dev_x, &dev_labels),
        COLS,
        5,
        TaskKind::Classification,
        1,
    )
    .unwrap();
    assert!(
        s.notes.contains("on 298 dev rows, 2 more left out"),
        "{}",
        s.notes
    );
    // A bad dev label is named as such.
    dev_labels[3] = 5;
    let err = select_with_dev(
        r#"{"score_on": "dev"}"#,
        (&x, &labels),
        (&dev_x, &dev_labels),
        COLS,
        5,
        TaskKind::Classification,
        1,
    )
    .expect_err("dev label");
    assert!(err.contains("dev row 3 has label 5"), "{err}");
}

#[test]
fn params_parse_and_reject_bad_values() {
    assert_eq!(open("{}").unwrap().params, Params::default());
    let p = open(r#"{"budget": 400, "max_rows": 10, "prior": 0, "score_on": "dev"}"#)
        .unwrap()
        .params;
    assert_eq!((p.budget, p.max_rows, p.prior), (400, 10, 0.0));
    assert_eq!(p.score_on, ScoreOn::Dev);
    for (json, needle) in [
        (r#"{"budget": 401}"#, "budget must be at most 400, got 401"),
        (r#"{"budget": 0}"#, "budget must be at least 1"),
        (r#"{"max_rows": 1}"#, "max_rows"),
        (r#"{"prior": -1}"#, "prior"),
        (r#"{"lambda": 1}"#, "lambda"),
        (
            r#"{"score_on": "test"}"#,
            "score_on must be `train` or `dev`, got `test`",
        ),
        ("[]", "invalid"),
    ] {
        let err = open(json).expect_err(json);
        assert!(
            err.contains("selector 'gaussian'") && err.contains(needle),
            "{err}"
        );
    }
}

#[test]
fn regression_bad_labels_and_bad_values_are_clear_errors() {
    let (x, labels) = halves();
    let err = select_on("{}", &x, COLS, &[], 0, TaskKind::Regression, 1).expect_err("regression");
    assert!(
        err.contains("'gaussian'") && err.contains("classification"),
        "{err}"
    );
    let mut bad = labels.clone();
    bad[4] = 9;
    let err = select_on("{}", &x, COLS, &bad, 4, TaskKind::Classification, 1).expect_err("label");
    assert!(err.contains("row 4 has label 9"), "{err}");
    let mut nan = x.clone();
    nan[2 * COLS + 1] = f32::INFINITY;
    let err =
        select_on("{}", &nan, COLS, &labels, 4, TaskKind::Classification, 1).expect_err("inf");
    assert!(err.contains("[2, 1]"), "{err}");
    // One class: nothing to select, column order.
    let one = vec![2u32; labels.len()];
    let s = select_on("{}", &x, COLS, &one, 4, TaskKind::Classification, 1).unwrap();
    assert_eq!(s.order.to_vec(), (0..COLS as u32).collect::<Vec<_>>());
    assert!(s.notes.contains("fewer than 2 classes"), "{}", s.notes);
}

/// Weakly informative data of a realistic size: 45 classes, every 97th
/// column shifted by 0.05 * class (28 of 2,688 columns), the rest noise.
fn realistic(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let labels: Vec<u32> = (0..rows).map(|_| (rng.next_u64() % 45) as u32).collect();
    let mut x = Vec::with_capacity(rows * cols);
    for &label in &labels {
        for j in 0..cols {
            let signal = if j % 97 == 0 {
                0.05 * label as f32
            } else {
                0.0
            };
            x.push(rng.uniform() + signal);
        }
    }
    (x, labels)
}

/// Realistic size: 5,000 rows x 2,688 columns, 45 classes, budget 50,
/// scored in-sample (the default) and on 2,000 dev rows. Run with
/// `cargo test --release -p sieve-selector-gaussian --test plugin --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn timing_on_a_realistic_size() {
    let cols = 2688;
    let train = realistic(5000, cols, 1);
    let dev = realistic(2000, cols, 2);
    for params in [r#"{}"#, r#"{"score_on": "dev"}"#] {
        let start = std::time::Instant::now();
        let s = select_with_dev(
            params,
            (&train.0, &train.1),
            (&dev.0, &dev.1),
            cols,
            45,
            TaskKind::Classification,
            42,
        )
        .unwrap();
        let took = start.elapsed();
        assert_eq!(s.order.len(), cols);
        let informative = s.order[..28].iter().filter(|&&j| j % 97 == 0).count();
        eprintln!("gaussian {params}: 5000 x {cols}, 45 classes: {took:.2?}");
        eprintln!("  {}", s.notes);
        eprintln!("  informative columns in the top 28: {informative} of 28");
    }
}
