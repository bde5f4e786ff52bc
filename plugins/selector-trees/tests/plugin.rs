//! The selector as the host calls it, on matrices whose right answer is
//! known by construction.

use sieve_core::testing::{is_permutation, NoProbeHost, TestProblem, TestRng as Rng, TestSplit};
use sieve_core::{Selection, SelectionKind, TaskKind};
use sieve_selector_trees::{column_blocks, open, Params};

struct Data {
    x: Vec<f32>,
    cols: usize,
    labels: Vec<u32>,
    targets: Vec<f32>,
    num_classes: u32,
    task: TaskKind,
}

/// The selection of `params` on `d`; the selector never trains a probe,
/// so the host refuses.
fn select_on(params: &str, d: &Data, seed: u64) -> Result<Selection, String> {
    let split = TestSplit {
        x: &d.x,
        labels: &d.labels,
        targets: &d.targets,
    };
    let problem = TestProblem::on_split(d.task, d.cols, split, d.num_classes).with_seed(seed);
    problem.select(&open(params)?, &NoProbeHost)
}

const PLANTED: usize = 11;
const CONSTANT: usize = 29;

/// 400 rows, 4 classes, 30 columns of uniform noise except column 11 (the
/// class plus a little noise: it alone separates the classes) and column
/// 29 (constant: no split can use it).
fn classification() -> Data {
    let (rows, cols) = (400, 30);
    let mut rng = Rng::new(9);
    let labels: Vec<u32> = (0..rows).map(|_| (rng.next_u64() % 4) as u32).collect();
    let mut x = Vec::with_capacity(rows * cols);
    for &label in &labels {
        for j in 0..cols {
            x.push(match j {
                PLANTED => label as f32 + 0.3 * rng.uniform(),
                CONSTANT => 2.0,
                _ => rng.uniform(),
            });
        }
    }
    Data {
        x,
        cols,
        labels,
        targets: Vec::new(),
        num_classes: 4,
        task: TaskKind::Classification,
    }
}

#[test]
fn planted_neuron_first_constant_last() {
    let d = classification();
    let s = select_on("{}", &d, 42).expect("select");
    assert_eq!(s.kind, SelectionKind::Ranking);
    let order = s.order.to_vec();
    assert!(is_permutation(&order, d.cols));
    assert_eq!(order[0], PLANTED as u32);
    assert_eq!(*order.last().unwrap(), CONSTANT as u32);
    // Deep trees also split on noise, but the planted column carries far
    // more of the impurity decrease than any noise column.
    assert!(s.scores[0] > 4.0 * s.scores[1], "{:?}", s.scores);
    assert_eq!(*s.scores.last().unwrap(), 0.0);
    let total: f32 = s.scores.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
    assert!(s.notes.contains("50 smartcore trees"), "{}", s.notes);
}

#[test]
fn same_seed_same_ranking_other_seed_still_valid() {
    let d = classification();
    let params = r#"{"trees": 12, "max_depth": 6}"#;
    let a = select_on(params, &d, 1).unwrap();
    let b = select_on(params, &d, 1).unwrap();
    assert_eq!(a.order, b.order);
    assert_eq!(a.scores, b.scores);
    let c = select_on(params, &d, 2).unwrap();
    assert!(is_permutation(&c.order, d.cols));
    assert_eq!(c.order[0], PLANTED as u32);
    assert_ne!(a.scores, c.scores, "another seed grows other trees");
}

#[test]
fn subsampled_rows_and_small_blocks_still_find_the_planted_neuron() {
    let d = classification();
    let s = select_on(
        r#"{"max_rows": 100, "features_per_tree": 3, "trees": 40}"#,
        &d,
        5,
    )
    .unwrap();
    assert_eq!(s.order[0], PLANTED as u32);
    assert!(
        s.notes.contains("3 columns each, 100 of 400 rows"),
        "{}",
        s.notes
    );
    // Too few trees to cover 10 blocks: the notes say so.
    let s = select_on(r#"{"features_per_tree": 3, "trees": 4}"#, &d, 5).unwrap();
    assert!(is_permutation(&s.order, d.cols));
    assert!(
        s.notes.contains("18 columns were in no tree"),
        "{}",
        s.notes
    );
}

#[test]
fn blocks_cover_every_column_evenly() {
    let plan = column_blocks(10, 3, 9, 7);
    assert_eq!(plan.len(), 9);
    // 4 blocks per round (sizes 2/3), rounds 0 and 1 full, round 2 has one.
    let mut seen = [0; 10];
    for block in &plan[..8] {
        assert!(block.len() == 2 || block.len() == 3, "{block:?}");
        block.iter().for_each(|&j| seen[j] += 1);
    }
    assert_eq!(seen, [2; 10]);
    assert_eq!(plan, column_blocks(10, 3, 9, 7));
}

#[test]
fn regression_ranks_the_column_that_drives_the_target() {
    let (rows, cols) = (300, 12);
    let mut rng = Rng::new(4);
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.uniform()).collect();
    let targets: Vec<f32> = (0..rows)
        .map(|i| 3.0 * x[i * cols + 5] + 0.1 * rng.uniform())
        .collect();
    let d = Data {
        x,
        cols,
        labels: Vec::new(),
        targets,
        num_classes: 0,
        task: TaskKind::Regression,
    };
    let s = select_on("{}", &d, 3).unwrap();
    assert_eq!(s.order[0], 5);
    assert!(is_permutation(&s.order, cols));
}

#[test]
fn params_parse_and_reject_bad_values() {
    assert_eq!(open("{}").unwrap().params, Params::default());
    let p = open(r#"{"max_rows": 10, "trees": 3, "max_depth": 4, "features_per_tree": 9}"#)
        .unwrap()
        .params;
    assert_eq!((p.max_rows, p.trees, p.max_depth), (10, 3, 4));
    assert_eq!(p.block_size(100), 9);
    assert_eq!(Params::default().block_size(2688), 162);
    assert_eq!(Params::default().block_size(30), 6);
    for (json, needle) in [
        (r#"{"trees": 0}"#, "trees must be between 1 and 1000, got 0"),
        (r#"{"max_depth": 100}"#, "max_depth"),
        (r#"{"max_rows": 1}"#, "max_rows"),
        (r#"{"features_per_tree": 0}"#, "features_per_tree"),
        (r#"{"seed": 3}"#, "seed"),
        (r#"{"trees": -2}"#, "parameter `trees`"),
    ] {
        let err = open(json).expect_err(json);
        assert!(
            err.contains("selector 'tree-importance'") && err.contains(needle),
            "{err}"
        );
    }
}

#[test]
fn bad_labels_values_and_shapes_are_clear_errors() {
    let mut d = classification();
    d.labels[4] = 7;
    let err = select_on("{}", &d, 1).expect_err("label");
    assert!(
        err.contains("tree-importance") && err.contains("row 4 has label 7"),
        "{err}"
    );
    let mut d = classification();
    d.x[3 * d.cols + 2] = f32::NAN;
    let err = select_on("{}", &d, 1).expect_err("NaN");
    assert!(err.contains("[3, 2]"), "{err}");
    let mut d = classification();
    d.task = TaskKind::Regression;
    let err = select_on("{}", &d, 1).expect_err("no targets");
    assert!(err.contains("0 targets for 400 training rows"), "{err}");
    // One class only: no tree can split, every score 0, identity order.
    let mut d = classification();
    d.labels.iter_mut().for_each(|l| *l = 1);
    let s = select_on("{}", &d, 1).unwrap();
    assert_eq!(s.order.to_vec(), (0..d.cols as u32).collect::<Vec<_>>());
}

/// Realistic size: 5,000 rows x 2,688 columns, 45 classes, a few weakly
/// informative columns. Run with
/// `cargo test --release -p sieve-selector-trees -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_on_a_realistic_size() {
    let (rows, cols) = (5000, 2688);
    let mut rng = Rng::new(1);
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
    let d = Data {
        x,
        cols,
        labels,
        targets: Vec::new(),
        num_classes: 45,
        task: TaskKind::Classification,
    };
    let start = std::time::Instant::now();
    let s = select_on("{}", &d, 42).unwrap();
    eprintln!(
        "tree-importance: {rows} x {cols}, 45 classes: {:.2?} ({})",
        start.elapsed(),
        s.notes
    );
    assert_eq!(s.order.len(), cols);
    let informative = s.order[..28].iter().filter(|&&j| j % 97 == 0).count();
    eprintln!("informative columns in the top 28: {informative} of 28");
}
