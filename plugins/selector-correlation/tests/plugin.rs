//! The selector as the host calls it: parameters, select(), determinism.

use abi_stable::std_types::RSlice;
use sieve_core::testing::NoProbeHost;
use sieve_core::{
    lend_probe_host, FeatureId, MatrixView, SelectionKind, SelectorInput, SelectorPlugin, TaskKind,
};
use sieve_selector_correlation::{cluster_columns, open, Linkage, Params, Representative};

const ROWS: usize = 120;

/// Columns: 0..4 independent signals; 4, 5, 6 scaled/shifted/negated copies
/// of 0 (redundant); 7 a noisy copy of 1; 8 constant.
fn matrix() -> (Vec<f32>, usize) {
    let cols = 9;
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut x = vec![0.0f32; ROWS * cols];
    for r in 0..ROWS {
        let row = &mut x[r * cols..(r + 1) * cols];
        for v in row.iter_mut().take(4) {
            *v = next();
        }
        row[4] = 3.0 * row[0];
        row[5] = row[0] + 7.0;
        row[6] = -0.5 * row[0];
        row[7] = row[1] + 0.01 * next();
        row[8] = 1.5;
    }
    (x, cols)
}

fn features(cols: usize) -> Vec<FeatureId> {
    (0..cols as u32)
        .map(|neuron| FeatureId { layer: 0, neuron })
        .collect()
}

fn input<'a>(x: &'a [f32], cols: usize, features: &'a [FeatureId], seed: u64) -> SelectorInput<'a> {
    let view = MatrixView::new(x, x.len() / cols, cols).expect("shape");
    SelectorInput {
        task: TaskKind::Classification,
        train: view,
        dev: view,
        train_labels: RSlice::from_slice(&[]),
        dev_labels: RSlice::from_slice(&[]),
        train_targets: RSlice::from_slice(&[]),
        dev_targets: RSlice::from_slice(&[]),
        num_classes: 2,
        features: RSlice::from_slice(features),
        seed,
    }
}

#[test]
fn params_default_parse_and_reject_unknown_fields() {
    assert_eq!(open("{}").expect("defaults").params, Params::default());
    assert_eq!(
        open("").expect("empty means defaults").params,
        Params::default()
    );
    let p = open(r#"{"threshold": 0.5, "linkage": "complete", "representative": "medoid"}"#)
        .expect("valid")
        .params;
    assert_eq!(
        (p.threshold, p.linkage, p.representative),
        (0.5, Linkage::Complete, Representative::Medoid)
    );
    let err = open(r#"{"treshold": 0.5}"#).err().expect("unknown field");
    assert!(
        err.contains("correlation") && err.contains("treshold"),
        "{err}"
    );
    let err = open(r#"{"linkage": "ward"}"#).err().expect("ward refused");
    assert!(err.contains("Euclidean"), "{err}");
    let err = open(r#"{"threshold": -1}"#)
        .err()
        .expect("negative threshold");
    assert!(err.contains("threshold"), "{err}");
    assert!(open(r#"{"representative": "best"}"#).is_err());
    assert!(open("[1]").is_err());
}

#[test]
fn redundant_copies_collapse_and_constant_column_stands_alone() {
    let (x, cols) = matrix();
    let view = MatrixView::new(&x, ROWS, cols).expect("shape");
    let c = cluster_columns(&view, &Params::default(), 1);
    let l = &c.labels;
    assert!(l[4] == l[0] && l[5] == l[0] && l[6] == l[0], "{l:?}");
    assert_eq!(l[7], l[1], "{l:?}");
    assert_eq!(c.near_constant, vec![8]);
    assert_eq!(c.clusters.iter().filter(|m| m.contains(&8)).count(), 1);
    assert!(c.clusters.iter().any(|m| m == &vec![8]), "{:?}", c.clusters);
    assert_eq!(c.clusters.len(), 5, "{:?}", c.clusters);
}

#[test]
fn select_returns_sorted_representatives_one_per_cluster() {
    let (x, cols) = matrix();
    let features = features(cols);
    let host = NoProbeHost;
    for representative in ["random", "medoid", "first"] {
        let selector = open(&format!(r#"{{"representative": "{representative}"}}"#)).expect("open");
        let input = input(&x, cols, &features, 7);
        let selection = selector
            .select(&input, &lend_probe_host(&host))
            .expect("select");
        assert_eq!(selection.kind, SelectionKind::Filter);
        assert!(selection.cutoffs.is_empty());
        // Each representative's score is the size of its cluster: every
        // column is in exactly one cluster.
        let sizes: Vec<f32> = selection.scores.to_vec();
        assert_eq!(sizes.len(), selection.order.len());
        assert!(sizes.iter().all(|&s| s >= 1.0), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<f32>(), cols as f32, "{sizes:?}");
        let order: Vec<u32> = selection.order.to_vec();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert_eq!(order.len(), 5);
        let view = MatrixView::new(&x, ROWS, cols).expect("shape");
        let clustering = cluster_columns(&view, &selector.params, 7);
        for (members, rep) in clustering.clusters.iter().zip(&clustering.representatives) {
            assert!(
                members.contains(rep),
                "{representative}: {rep} not in {members:?}"
            );
        }
        assert!(
            selection
                .notes
                .contains("9 neurons -> 5 clusters at t=0.3 (average linkage"),
            "{}",
            selection.notes
        );
    }
}

#[test]
fn seeds_change_random_representatives_but_not_the_partition() {
    let (x, cols) = matrix();
    let view = MatrixView::new(&x, ROWS, cols).expect("shape");
    let params = Params::default();
    let first = cluster_columns(&view, &params, 0);
    let mut differed = false;
    for seed in 1..32 {
        let other = cluster_columns(&view, &params, seed);
        assert_eq!(other.labels, first.labels);
        differed |= other.representatives != first.representatives;
        let again = cluster_columns(&view, &params, seed);
        assert_eq!(
            again.representatives, other.representatives,
            "deterministic"
        );
    }
    assert!(differed, "32 seeds all picked the same representatives");
}

#[test]
fn medoid_picks_the_best_connected_copy() {
    // 0, 4, 5, 6 are exact copies (|r| = 1 among all), so the medoid is the
    // lowest index; 1 and 7 tie the same way.
    let (x, cols) = matrix();
    let view = MatrixView::new(&x, ROWS, cols).expect("shape");
    let params = Params {
        representative: Representative::Medoid,
        ..Params::default()
    };
    let c = cluster_columns(&view, &params, 0);
    let mut reps = c.representatives.clone();
    reps.sort_unstable();
    assert_eq!(reps, vec![0, 1, 2, 3, 8]);
}

#[test]
fn degenerate_inputs_are_errors_not_panics() {
    let features = features(2);
    let host = NoProbeHost;
    let selector = open("{}").expect("open");
    let one_row = [1.0f32, 2.0];
    let err = selector
        .select(&input(&one_row, 2, &features, 0), &lend_probe_host(&host))
        .expect_err("one row");
    assert!(err.contains("at least 2"), "{err}");
    let nan = [1.0f32, 2.0, f32::NAN, 4.0];
    let err = selector
        .select(&input(&nan, 2, &features, 0), &lend_probe_host(&host))
        .expect_err("NaN");
    assert!(err.contains("row 1, column 0"), "{err}");
    let single = [1.0f32, 2.0, 3.0];
    let selection = selector
        .select(
            &input(&single, 1, &features[..1], 0),
            &lend_probe_host(&host),
        )
        .expect("one column");
    assert_eq!(selection.order.to_vec(), vec![0]);
}
