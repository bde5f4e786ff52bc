use super::*;
use crate::probe::SplitMix64;

/// `rows` points per split drawn from `classes` Gaussian blobs with centres
/// `spread` apart in `features` dimensions.
fn blobs(
    rows: usize,
    features: usize,
    classes: usize,
    spread: f64,
    rng: &mut SplitMix64,
) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(rows * features);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let c = rng.below(classes);
        for f in 0..features {
            let centre = if f % classes == c { spread } else { 0.0 };
            x.push((centre + rng.normal()) as f32);
        }
        y.push(c as u32);
    }
    (x, y)
}

/// The label is the sign of feature 0; features 1.. are noise.
fn one_feature(rows: usize, features: usize, rng: &mut SplitMix64) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(rows * features);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let signal = rng.normal();
        let signal = signal + 0.3 * signal.signum();
        x.push(signal as f32);
        for _ in 1..features {
            x.push((3.0 * rng.normal()) as f32);
        }
        y.push(u32::from(signal > 0.0));
    }
    (x, y)
}

fn small_spec() -> DownstreamSpec {
    DownstreamSpec {
        trees: 20,
        ..DownstreamSpec::default()
    }
}

#[test]
fn downstream_blobs_are_learned_by_every_classifier() {
    let mut rng = SplitMix64::new(7);
    let train = blobs(300, 6, 3, 4.0, &mut rng);
    let dev = blobs(100, 6, 3, 4.0, &mut rng);
    let test = blobs(100, 6, 3, 4.0, &mut rng);
    for kind in ClassifierKind::ALL {
        let score = train_and_score(
            kind,
            &small_spec(),
            6,
            3,
            (&train.0, &train.1),
            (&dev.0, &dev.1),
            (&test.0, &test.1),
            1,
        )
        .unwrap();
        assert!(score.test > 0.95, "{kind:?}: {score:?}");
        assert!(score.dev > 0.95, "{kind:?}: {score:?}");
        assert_eq!(score.train_rows, 300);
        assert_eq!(score.features, 6);
    }
}

#[test]
fn downstream_label_from_one_feature_among_noise() {
    let mut rng = SplitMix64::new(11);
    let train = one_feature(600, 5, &mut rng);
    let dev = one_feature(200, 5, &mut rng);
    let test = one_feature(200, 5, &mut rng);
    for kind in ClassifierKind::ALL {
        let score = train_and_score(
            kind,
            &small_spec(),
            5,
            2,
            (&train.0, &train.1),
            (&dev.0, &dev.1),
            (&test.0, &test.1),
            3,
        )
        .unwrap();
        // kNN suffers most from the noise dimensions; the others should be near perfect.
        let floor = if kind == ClassifierKind::Knn {
            0.75
        } else {
            0.95
        };
        assert!(score.test > floor, "{kind:?}: {score:?}");
    }
}

#[test]
fn downstream_subsamples_above_max_train_rows() {
    let mut rng = SplitMix64::new(5);
    let train = blobs(400, 4, 2, 4.0, &mut rng);
    let test = blobs(50, 4, 2, 4.0, &mut rng);
    let spec = DownstreamSpec {
        max_train_rows: 150,
        ..small_spec()
    };
    let score = train_and_score(
        ClassifierKind::Knn,
        &spec,
        4,
        2,
        (&train.0, &train.1),
        (&test.0, &test.1),
        (&test.0, &test.1),
        9,
    )
    .unwrap();
    assert_eq!(score.train_rows, 150);
    assert!(score.test > 0.9, "{score:?}");
}

#[test]
fn downstream_shape_and_label_errors() {
    let x = vec![0.0f32; 12];
    let y = [0u32, 1, 0, 1];
    let ok = (&x[..], &y[..]);
    let spec = small_spec();
    let run = |train: (&[f32], &[u32]), features: usize, classes: usize| {
        train_and_score(
            ClassifierKind::LogisticRegression,
            &spec,
            features,
            classes,
            train,
            ok,
            ok,
            0,
        )
    };
    // 12 values are not rows of 5 features.
    assert!(run(ok, 5, 2).is_err());
    // Rows and labels disagree.
    assert!(run((&x[..], &y[..3]), 3, 2).is_err());
    // A training label at or above num_classes.
    let bad = [0u32, 1, 2, 1];
    assert!(run((&x[..], &bad[..]), 3, 2).is_err());
    // In dev/test such a label is an unseen class: allowed, always wrong.
    let unseen = train_and_score(
        ClassifierKind::Knn,
        &spec,
        3,
        2,
        ok,
        (&x[..], &bad[..]),
        (&x[..], &[2, 2, 2, 2]),
        0,
    )
    .unwrap();
    assert_eq!(unseen.test, 0.0);
    // Empty training data.
    assert!(run((&[], &[]), 3, 2).is_err());
    // No features, one class.
    assert!(run(ok, 0, 2).is_err());
    assert!(run(ok, 3, 1).is_err());
    // Non-finite values.
    let mut nan = x.clone();
    nan[4] = f32::NAN;
    assert!(run((&nan[..], &y[..]), 3, 2).is_err());
    // A dev split with the wrong width.
    let short = [0.0f32; 7];
    assert!(train_and_score(
        ClassifierKind::Knn,
        &spec,
        3,
        2,
        ok,
        (&short[..], &y[..]),
        ok,
        0
    )
    .is_err());
}

#[test]
fn downstream_is_deterministic_for_a_seed() {
    let mut rng = SplitMix64::new(21);
    let train = blobs(400, 5, 4, 1.5, &mut rng);
    let dev = blobs(150, 5, 4, 1.5, &mut rng);
    let test = blobs(150, 5, 4, 1.5, &mut rng);
    let spec = DownstreamSpec {
        max_train_rows: 300,
        ..small_spec()
    };
    for kind in ClassifierKind::ALL {
        let run = || {
            train_and_score(
                kind,
                &spec,
                5,
                4,
                (&train.0, &train.1),
                (&dev.0, &dev.1),
                (&test.0, &test.1),
                17,
            )
            .unwrap()
        };
        let (a, b) = (run(), run());
        assert_eq!((a.dev, a.test), (b.dev, b.test), "{kind:?}");
    }
}

#[test]
fn downstream_spec_defaults_and_names() {
    let spec: DownstreamSpec = serde_json::from_str("{}").unwrap();
    assert_eq!(spec.classifiers, ClassifierKind::ALL.to_vec());
    assert_eq!(spec.max_train_rows, 20_000);
    assert_eq!(spec.knn_k, 5);
    assert_eq!(spec.trees, 100);
    let spec: DownstreamSpec =
        serde_json::from_str(r#"{"classifiers": ["linear-svm", "knn"], "knn_k": 3}"#).unwrap();
    assert_eq!(
        spec.classifiers,
        vec![ClassifierKind::LinearSvm, ClassifierKind::Knn]
    );
    assert!(serde_json::from_str::<DownstreamSpec>(r#"{"bogus": 1}"#).is_err());
    for kind in ClassifierKind::ALL {
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            format!("\"{}\"", kind.name())
        );
    }
}
