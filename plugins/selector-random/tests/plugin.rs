//! The selector as the host calls it: a permutation, a function of the seed.

use abi_stable::std_types::RSlice;
use sieve_core::testing::{is_permutation, NoProbeHost};
use sieve_core::{
    lend_probe_host, FeatureId, MatrixView, Selection, SelectionKind, SelectorInput,
    SelectorPlugin, TaskKind,
};
use sieve_selector_random::{open, shuffled};

const ROWS: usize = 3;

fn select(params: &str, cols: usize, seed: u64, task: TaskKind) -> Result<Selection, String> {
    let x = vec![0.25f32; ROWS * cols];
    let labels = [0u32, 1, 0];
    let targets = [0.5f32, 1.5, 2.5];
    let features: Vec<FeatureId> = (0..cols as u32)
        .map(|neuron| FeatureId { layer: 2, neuron })
        .collect();
    let view = MatrixView::new(&x, ROWS, cols).expect("shape");
    let classification = task == TaskKind::Classification;
    let input = SelectorInput {
        task,
        train: view,
        dev: view,
        train_labels: RSlice::from_slice(if classification { &labels } else { &[] }),
        dev_labels: RSlice::from_slice(if classification { &labels } else { &[] }),
        train_targets: RSlice::from_slice(if classification { &[] } else { &targets }),
        dev_targets: RSlice::from_slice(if classification { &[] } else { &targets }),
        num_classes: if classification { 2 } else { 0 },
        features: RSlice::from_slice(&features),
        seed,
    };
    open(params)?.select(&input, &lend_probe_host(&NoProbeHost))
}

#[test]
fn a_seeded_permutation_of_every_column() {
    let a = select("{}", 500, 42, TaskKind::Classification).expect("select");
    assert_eq!(a.kind, SelectionKind::Ranking);
    assert!(is_permutation(&a.order, 500));
    assert!(a.scores.is_empty() && a.cutoffs.is_empty());
    assert!(a.notes.contains("run seed 42"), "{}", a.notes);
    // Same seed, same order; another seed, another order.
    let again = select("{}", 500, 42, TaskKind::Classification).unwrap();
    assert_eq!(a.order, again.order);
    let other = select("{}", 500, 43, TaskKind::Classification).unwrap();
    assert!(is_permutation(&other.order, 500));
    assert_ne!(a.order, other.order);
    // Actually shuffled: far from the identity.
    let fixed = a
        .order
        .iter()
        .enumerate()
        .filter(|(i, &j)| *i == j as usize);
    assert!(fixed.count() < 20);
}

#[test]
fn the_seed_parameter_replaces_the_runs_seed() {
    let by_param = select(r#"{"seed": 9}"#, 50, 42, TaskKind::Classification).unwrap();
    let by_run = select("{}", 50, 9, TaskKind::Classification).unwrap();
    assert_eq!(by_param.order, by_run.order);
    assert!(
        by_param.notes.contains("parameter seed 9"),
        "{}",
        by_param.notes
    );
    assert_eq!(by_param.order.to_vec(), shuffled(50, 9));
}

#[test]
fn regression_and_tiny_inputs_work_and_bad_params_fail() {
    let s = select("{}", 1, 3, TaskKind::Regression).expect("one column");
    assert_eq!(s.order.to_vec(), vec![0]);
    let s = select("{}", 7, 3, TaskKind::Regression).expect("regression");
    assert!(is_permutation(&s.order, 7));
    let err = open(r#"{"sed": 1}"#).expect_err("unknown field");
    assert!(err.contains("random") && err.contains("sed"), "{err}");
    assert!(open(r#"{"seed": -1}"#).is_err());
}
