//! Unit tests on seeded synthetic data.

use super::data::RawInput;
use super::gemm::MatRef;
use super::objective::{l2_over_norm, paper_penalty, paper_penalty_grad, Targets};
use super::solver_adam::{batch_gradient, torch_linear_init, BatchScratch};
use super::*;
use ::gemm::Parallelism;
use candle_core::Device;

/// Gaussian blobs: `classes` centres at distance ~`sep`, unit noise.
fn blobs(rows: usize, cols: usize, classes: usize, sep: f64, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = SplitMix64::new(seed);
    let centres: Vec<f64> = (0..classes * cols).map(|_| rng.normal() * sep).collect();
    let mut x = Vec::with_capacity(rows * cols);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let c = rng.below(classes);
        y.push(c as u32);
        x.extend((0..cols).map(|j| (centres[c * cols + j] + rng.normal()) as f32));
    }
    (x, y)
}

fn classification(num_classes: usize) -> Task {
    Task::Classification { num_classes }
}

fn adam_fast() -> ProbeSettings {
    ProbeSettings {
        learning_rate: 1e-2,
        epochs: 30,
        batch_size: 32,
        ..ProbeSettings::default()
    }
}

fn fista(l1: f32, l2: f32) -> ProbeSettings {
    ProbeSettings {
        solver: Solver::Fista,
        l1,
        l2,
        max_iter: 500,
        ..ProbeSettings::default()
    }
}

fn train_cls(
    x: &[f32],
    y: &[u32],
    cols: usize,
    k: usize,
    s: &ProbeSettings,
    seed: u64,
) -> TrainedProbe {
    train_probe(x, y.len(), cols, y, &[], classification(k), s, seed).unwrap()
}

#[test]
fn adam_separates_three_blobs() {
    let (x, y) = blobs(900, 10, 3, 2.0, 1);
    let p = train_cls(&x, &y, 10, 3, &adam_fast(), 7);
    let acc = accuracy(&p.predict_classes(&x, 900), &y);
    assert!(acc >= 0.95, "train accuracy {acc}");
    assert!(
        p.solver_note.starts_with("adam lr=0.01 epochs=30 batch=32"),
        "{}",
        p.solver_note
    );
}

#[test]
fn paper_recipe_separates_three_blobs() {
    // The exact paper settings (file order, lr 1e-3, 10 epochs, batch 128)
    // on enough rows for ~200 steps.
    let (x, y) = blobs(2_500, 20, 3, 2.0, 2);
    let p = train_cls(&x, &y, 20, 3, &ProbeSettings::paper(), 3);
    let acc = accuracy(&p.predict_classes(&x, 2_500), &y);
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn fista_separates_three_blobs() {
    let (x, y) = blobs(900, 10, 3, 2.0, 4);
    let p = train_cls(&x, &y, 10, 3, &fista(1e-3, 1e-3), 0);
    let acc = accuracy(&p.predict_classes(&x, 900), &y);
    assert!(acc >= 0.95, "accuracy {acc} ({})", p.solver_note);
    assert!(p.solver_note.contains("SQUARED"), "{}", p.solver_note);
}

#[test]
fn fista_converges_to_a_stationary_point() {
    let (x, y) = blobs(400, 8, 3, 1.0, 5);
    let s = ProbeSettings {
        tolerance: 1e-6,
        max_iter: 3_000,
        ..fista(1e-2, 1e-2)
    };
    let p = train_cls(&x, &y, 8, 3, &s, 0);
    assert!(
        p.solver_note.contains("converged=true"),
        "{}",
        p.solver_note
    );
    let g = full_data_gradient(&x, &y, 8, 3, &p.weights, &p.bias);
    // Optimality of the elastic net: |g_j + l2 w_j| <= l1 where w_j = 0,
    // g_j + l2 w_j + l1 sign(w_j) = 0 elsewhere; bias gradient 0.
    for (i, (&w, &gw)) in p.weights.iter().zip(&g.0).enumerate() {
        let r = gw + 1e-2 * w as f64;
        if w == 0.0 {
            assert!(r.abs() <= 1e-2 + 1e-4, "weight {i}: |{r}| > l1");
        } else {
            let kkt = r + 1e-2 * (w as f64).signum();
            assert!(kkt.abs() < 1e-3, "weight {i}: kkt residual {kkt}");
        }
    }
    assert!(g.1.iter().all(|b| b.abs() < 1e-3), "bias grad {:?}", g.1);
}

#[test]
fn fista_l1_path_gives_more_exact_zeros() {
    let (x, y) = blobs(600, 30, 3, 0.7, 6);
    let mut zeros = Vec::new();
    let mut prev: Option<TrainedProbe> = None;
    for l1 in [1e-3f32, 1e-2, 3e-2, 1e-1, 1.0] {
        let s = fista(l1, 1e-4);
        let p = train_probe_warm(
            &x,
            600,
            30,
            &y,
            &[],
            classification(3),
            &s,
            0,
            prev.as_ref(),
        )
        .unwrap();
        zeros.push(p.zero_weights());
        prev = Some(p);
    }
    assert!(zeros.windows(2).all(|w| w[0] <= w[1]), "zeros {zeros:?}");
    assert!(zeros[0] < zeros[3], "zeros {zeros:?}");
    assert_eq!(
        *zeros.last().unwrap(),
        90,
        "large l1 must zero every weight"
    );
}

#[test]
fn warm_start_matches_cold_start() {
    let (x, y) = blobs(300, 6, 3, 1.0, 7);
    let s = ProbeSettings {
        tolerance: 1e-7,
        max_iter: 5_000,
        ..fista(1e-2, 1e-3)
    };
    let cold = train_cls(&x, &y, 6, 3, &s, 0);
    let other = train_cls(&x, &y, 6, 3, &fista(5e-2, 1e-3), 0);
    let warm =
        train_probe_warm(&x, 300, 6, &y, &[], classification(3), &s, 0, Some(&other)).unwrap();
    for (a, b) in cold.weights.iter().zip(&warm.weights) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}

#[test]
fn same_seed_gives_identical_weights() {
    let (x, y) = blobs(700, 12, 4, 1.0, 8);
    for shuffle in [false, true] {
        let s = ProbeSettings {
            shuffle,
            ..adam_fast()
        };
        let a = train_cls(&x, &y, 12, 4, &s, 42);
        let b = train_cls(&x, &y, 12, 4, &s, 42);
        let c = train_cls(&x, &y, 12, 4, &s, 43);
        assert_eq!(bits(&a.weights), bits(&b.weights));
        assert_eq!(bits(&a.bias), bits(&b.bias));
        assert_ne!(bits(&a.weights), bits(&c.weights));
    }
    let a = train_cls(&x, &y, 12, 4, &fista(1e-2, 1e-2), 0);
    let b = train_cls(&x, &y, 12, 4, &fista(1e-2, 1e-2), 0);
    assert_eq!(bits(&a.weights), bits(&b.weights));
}

#[test]
fn shuffle_changes_the_batches() {
    let (x, y) = blobs(500, 5, 2, 1.0, 9);
    let a = train_cls(&x, &y, 5, 2, &ProbeSettings::paper(), 1);
    let b = train_cls(&x, &y, 5, 2, &ProbeSettings::default(), 1);
    assert_ne!(bits(&a.weights), bits(&b.weights));
    assert!(a.solver_note.contains("shuffle=false"));
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn torch_init_is_bounded_and_seeded() {
    let (w, b) = torch_linear_init(3, 16, 5);
    assert!(w.iter().chain(&b).all(|v| v.abs() <= 0.25));
    assert_eq!(torch_linear_init(3, 16, 5), (w.clone(), b));
    assert_ne!(torch_linear_init(3, 16, 6).0, w);
}

#[test]
fn standardize_handles_a_constant_column() {
    let (mut x, y) = blobs(400, 10, 3, 2.0, 10);
    for row in x.chunks_exact_mut(10) {
        row[2] = 7.5;
        row[4] *= 1_000.0;
    }
    for solver in [Solver::Adam, Solver::Fista] {
        let s = ProbeSettings {
            solver,
            standardize: true,
            ..adam_fast()
        };
        let p = train_cls(&x, &y, 10, 3, &s, 1);
        let (mean, std) = p.standardization.clone().unwrap();
        assert_eq!(std[2], 0.0);
        assert_eq!(mean[2], 7.5);
        assert!(p.weights.iter().all(|w| w.is_finite()));
        assert!(p.solver_note.ends_with("standardized"));
        let acc = accuracy(&p.predict_classes(&x, 400), &y);
        assert!(acc > 0.9, "{solver:?} accuracy {acc}");
    }
}

#[test]
fn column_stats_name_the_first_non_finite_value() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x: Vec<f32> = (0..595).map(|v| v as f32 * 0.5).collect();
        x[3 * 7 + 5] = bad;
        x[9 * 7 + 1] = f32::NAN;
        match super::data::checked_column_stats(&x, 7) {
            Err(ProbeError::NonFiniteInput { row, col, .. }) => assert_eq!((row, col), (3, 5)),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn column_stats_are_population_moments() {
    let x = [1.0f32, 5.0, 3.0, 5.0, 5.0, 5.0];
    let (mean, std) = super::data::checked_column_stats(&x, 2).unwrap();
    assert_eq!(mean, vec![3.0, 5.0]);
    assert!((std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
    assert_eq!(std[1], 0.0);
}

/// Independent f64 implementation of the mean CE and its gradient.
fn full_data_gradient(
    x: &[f32],
    y: &[u32],
    d: usize,
    k: usize,
    w: &[f32],
    b: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let n = y.len();
    let (mut gw, mut gb) = (vec![0.0; k * d], vec![0.0; k]);
    for (row, &label) in x.chunks_exact(d).zip(y) {
        let z: Vec<f64> = (0..k)
            .map(|c| {
                b[c] as f64
                    + (0..d)
                        .map(|j| w[c * d + j] as f64 * row[j] as f64)
                        .sum::<f64>()
            })
            .collect();
        let max = z.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        for c in 0..k {
            let dz = ((z[c] - max).exp() / sum - f64::from(c as u32 == label)) / n as f64;
            gb[c] += dz;
            (0..d).for_each(|j| gw[c * d + j] += dz * row[j] as f64);
        }
    }
    (gw, gb)
}

/// A small classification problem for the gradient check.
struct Tiny<'a> {
    x: &'a [f32],
    y: &'a [u32],
    d: usize,
    k: usize,
}

fn paper_objective_f64(p: &Tiny<'_>, w: &[f64], b: &[f64], l1: f64, l2: f64) -> f64 {
    let (x, y, d, k) = (p.x, p.y, p.d, p.k);
    let mut loss = 0.0;
    for (row, &label) in x.chunks_exact(d).zip(y) {
        let z: Vec<f64> = (0..k)
            .map(|c| b[c] + (0..d).map(|j| w[c * d + j] * row[j] as f64).sum::<f64>())
            .collect();
        let max = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss += lse - z[label as usize];
    }
    let abs: f64 = w.iter().map(|v| v.abs()).sum();
    let norm: f64 = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    loss / y.len() as f64 + l1 * abs + l2 * norm
}

#[test]
fn adam_objective_gradient_matches_finite_differences() {
    let (d, k, n) = (4, 3, 6);
    let (x, y) = blobs(n, d, k, 1.0, 11);
    let (w, b) = torch_linear_init(k, d, 3);
    let (l1, l2) = (0.05f32, 0.2f32);
    let xb = MatRef::row_major(&x, n, d);
    let (mut scratch, mut gb) = (BatchScratch::default(), vec![0.0; k]);
    let targets = Targets::Classes(&y);
    let loss = batch_gradient(
        xb,
        &w,
        &b,
        targets,
        &mut scratch,
        &mut gb,
        Parallelism::None,
    );
    let gw = scratch.gw.clone();
    let l2n = l2_over_norm(l2, w.iter().map(|&v| (v as f64).powi(2)).sum());
    let analytic: Vec<f64> = gw
        .iter()
        .zip(&w)
        .map(|(&g, &wv)| (g + paper_penalty_grad(wv, l1, l2n)) as f64)
        .chain(gb.iter().map(|&g| g as f64))
        .collect();
    let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    let tiny = Tiny { x: &x, y: &y, d, k };
    let obj = |w: &[f64], b: &[f64]| paper_objective_f64(&tiny, w, b, l1 as f64, l2 as f64);
    let base = obj(&w64, &b64);
    let penalty = paper_penalty(&w, l1, l2);
    assert!(
        (base - (loss + penalty)).abs() < 1e-5,
        "{base} vs {}",
        loss + penalty
    );
    let h = 1e-5;
    for i in 0..k * d + k {
        let (mut wp, mut bp, mut wm, mut bm) = (w64.clone(), b64.clone(), w64.clone(), b64.clone());
        if i < k * d {
            wp[i] += h;
            wm[i] -= h;
        } else {
            bp[i - k * d] += h;
            bm[i - k * d] -= h;
        }
        let fd = (obj(&wp, &bp) - obj(&wm, &bm)) / (2.0 * h);
        assert!(
            (fd - analytic[i]).abs() < 1e-4,
            "param {i}: fd {fd} vs analytic {}",
            analytic[i]
        );
    }
}

#[test]
fn first_adam_step_moves_every_parameter_by_lr() {
    // At step 1, torch's Adam moves each parameter by lr * g / (|g| + eps).
    let (d, k, n) = (5, 3, 40);
    let (x, y) = blobs(n, d, k, 1.0, 12);
    let s = ProbeSettings {
        epochs: 1,
        batch_size: n,
        learning_rate: 0.01,
        l1: 0.0,
        l2: 0.0,
        ..ProbeSettings::paper()
    };
    let p = train_cls(&x, &y, d, k, &s, 9);
    let (w0, b0) = torch_linear_init(k, d, 9);
    let (gw, gb) = full_data_gradient(&x, &y, d, k, &w0, &b0);
    let moved = w0.iter().chain(&b0).zip(p.weights.iter().chain(&p.bias));
    for ((&before, &after), g) in moved.zip(gw.iter().chain(&gb)) {
        let expected = before as f64 - 0.01 * g.signum();
        assert!(
            (after as f64 - expected).abs() < 1e-6,
            "{after} vs {expected}"
        );
    }
}

fn linear_targets(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let a: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
    let t = x
        .chunks_exact(cols)
        .map(|r| {
            (0.5 + r.iter().zip(&a).map(|(&v, a)| v as f64 * a).sum::<f64>() + 0.05 * rng.normal())
                as f32
        })
        .collect();
    (x, t)
}

#[test]
fn regression_recovers_a_linear_function() {
    let (x, t) = linear_targets(1_000, 8, 13);
    let adam = ProbeSettings {
        learning_rate: 2e-2,
        epochs: 40,
        batch_size: 32,
        ..ProbeSettings::default()
    };
    for s in [adam, fista(1e-5, 1e-5)] {
        let p = train_probe(&x, 1_000, 8, &[], &t, Task::Regression, &s, 3).unwrap();
        assert_eq!(p.outputs, 1);
        let pred = p.predict_values(&x, 1_000);
        let r = pearson(&pred, &t);
        assert!(r > 0.99, "{:?}: pearson {r}", s.solver);
        assert!((p.bias[0] - 0.5).abs() < 0.1, "bias {}", p.bias[0]);
    }
}

#[test]
fn majority_baseline_uses_train_majority() {
    assert_eq!(majority_baseline(&[2, 2, 1, 0, 2], &[2, 1, 1, 2]), 0.5);
    assert_eq!(
        majority_baseline(&[1, 0], &[0, 0, 1]),
        2.0 / 3.0,
        "ties go to the lowest class"
    );
    assert_eq!(majority_baseline(&[], &[0]), 0.0);
    assert_eq!(majority_class(&[3, 3, 1]), Some(3));
}

#[test]
fn metrics_match_known_values() {
    assert_eq!(accuracy(&[1, 2, 3], &[1, 0, 3]), 2.0 / 3.0);
    assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]) - 0.993_399).abs() < 1e-5);
    assert_eq!(pearson(&[1.0, 1.0], &[0.0, 1.0]), 0.0);
    // scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138
    assert!((spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]) - 0.948_683_298).abs() < 1e-9);
    // Binary MCC = (TP*TN - FP*FN) / sqrt(...) = 2 / sqrt(12).
    let (gold, pred) = ([1u32, 1, 1, 0], [1u32, 0, 1, 0]);
    assert!((matthews(&pred, &gold, 2) - 0.577_350_269).abs() < 1e-9);
    // F1 class 0: 2/3, class 1: 0.8 -> macro 0.7333
    assert!((macro_f1(&pred, &gold, 2) - 0.733_333_333).abs() < 1e-9);
    assert_eq!(matthews(&[0, 0], &[0, 0], 2), 0.0);
}

fn err_of(x: &[f32], rows: usize, cols: usize, labels: &[u32], task: Task) -> String {
    let s = ProbeSettings::default();
    train_probe(x, rows, cols, labels, &[f32::NAN], task, &s, 0)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_inputs_give_clear_errors() {
    let x = [0.0f32; 6];
    let three = classification(3);
    assert!(err_of(&x, 0, 3, &[], three).contains("empty input"));
    assert!(err_of(&x, 2, 2, &[0, 1], three).contains("x has 6 values"));
    assert!(err_of(&x, 2, 3, &[0], three).contains("labels has 1 entries but x has 2 rows"));
    assert!(err_of(&x, 2, 3, &[0, 3], three)
        .contains("label 3 at row 1 is out of range (num_classes = 3)"));
    assert!(err_of(&x, 2, 3, &[0, 0], classification(0)).contains("at least one class"));
    let mut bad = x;
    bad[4] = f32::INFINITY;
    assert!(err_of(&bad, 2, 3, &[0, 1], three).contains("x[1, 1] is not finite (inf)"));
    bad[1] = f32::NAN;
    assert!(err_of(&bad, 2, 3, &[0, 1], three).contains("x[0, 1] is not finite (NaN)"));
    assert!(err_of(&x, 2, 3, &[], Task::Regression).contains("targets has 1 entries"));
    let e = train_probe(
        &x,
        2,
        3,
        &[],
        &[1.0, f32::NAN],
        Task::Regression,
        &ProbeSettings::default(),
        0,
    );
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("target at row 1 is not finite"));
    let s = ProbeSettings {
        batch_size: 0,
        ..ProbeSettings::default()
    };
    let e = train_probe(&x, 2, 3, &[0, 1], &[], three, &s, 0).unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
}

#[test]
fn warm_start_shape_is_checked() {
    let (x, y) = blobs(50, 4, 2, 1.0, 14);
    let p = train_cls(&x, &y, 4, 2, &adam_fast(), 0);
    let e = train_probe_warm(
        &x,
        50,
        4,
        &y,
        &[],
        classification(3),
        &adam_fast(),
        0,
        Some(&p),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("warm start probe does not fit"),
        "{e}"
    );
}

#[test]
fn settings_parse_with_defaults_and_reject_unknown_fields() {
    let s: ProbeSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(s, ProbeSettings::default());
    assert_eq!(
        (s.l1, s.l2, s.learning_rate, s.epochs, s.batch_size),
        (1e-5, 1e-5, 1e-3, 10, 128)
    );
    let s: ProbeSettings =
        serde_json::from_str(r#"{"solver":"fista","l1":0.1,"max_iter":20}"#).unwrap();
    assert_eq!((s.solver, s.l1, s.max_iter), (Solver::Fista, 0.1, 20));
    assert!(serde_json::from_str::<ProbeSettings>(r#"{"lr":0.1}"#).is_err());
}

#[test]
fn rng_below_is_in_range_and_shuffle_is_a_permutation() {
    let mut rng = SplitMix64::new(1);
    assert!((0..1000).all(|_| rng.below(7) < 7));
    let mut v: Vec<u32> = (0..100).collect();
    rng.shuffle(&mut v);
    assert_ne!(v, (0..100).collect::<Vec<_>>());
    v.sort();
    assert_eq!(v, (0..100).collect::<Vec<_>>());
}

#[test]
fn raw_input_keeps_file_order_targets() {
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let p = RawInput {
        x: &x,
        rows: 2,
        cols: 2,
        labels: &[1, 0],
        targets: &[],
        task: classification(2),
    }
    .into_problem(false)
    .unwrap();
    assert!(matches!(p.targets, Targets::Classes(&[1, 0])));
    assert_eq!(p.x.dims(), &[2, 2]);
}

/// An in-memory matrix served a block at a time, counting the reads.
struct Blocks<'a> {
    x: &'a [f32],
    cols: usize,
    reads: std::sync::atomic::AtomicUsize,
}

impl RowBlocks for Blocks<'_> {
    fn rows(&self) -> usize {
        self.x.len() / self.cols
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn read(&self, rows: std::ops::Range<usize>) -> Result<Vec<f32>, String> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.x[rows.start * self.cols..rows.end * self.cols].to_vec())
    }
}

fn blocks(x: &[f32], cols: usize) -> Blocks<'_> {
    Blocks {
        x,
        cols,
        reads: Default::default(),
    }
}

#[test]
fn streamed_training_in_file_order_equals_training_in_memory() {
    let (x, y) = blobs(1000, 6, 3, 1.0, 5);
    let raw = ProbeSettings {
        epochs: 3,
        batch_size: 32,
        shuffle: false,
        ..ProbeSettings::default()
    };
    let in_memory = train_cls(&x, &y, 6, 3, &raw, 9);
    let source = blocks(&x, 6);
    // 100 rows per block rounds down to 96: whole batches of 32, so the
    // batches are exactly those of the in-memory run.
    let streamed = train_probe_streamed(&source, 100, &y, &[], classification(3), &raw, 9).unwrap();
    assert_eq!(source.reads.into_inner(), 11 * 3, "11 blocks per epoch");
    assert_eq!(bits(&streamed.weights), bits(&in_memory.weights));
    assert_eq!(bits(&streamed.bias), bits(&in_memory.bias));
    assert!(streamed
        .solver_note
        .contains("streamed in blocks of 96 rows"));

    // Standardised: the streamed statistics (two more passes) agree with
    // the in-memory ones to rounding, and so do the weights.
    let z = ProbeSettings {
        standardize: true,
        ..raw
    };
    let in_memory = train_cls(&x, &y, 6, 3, &z, 9);
    let source = blocks(&x, 6);
    let streamed = train_probe_streamed(&source, 100, &y, &[], classification(3), &z, 9).unwrap();
    assert_eq!(source.reads.into_inner(), 11 * 5);
    let (mean_a, std_a) = streamed.standardization.clone().unwrap();
    let (mean_b, std_b) = in_memory.standardization.clone().unwrap();
    for (a, b) in mean_a.iter().zip(&mean_b).chain(std_a.iter().zip(&std_b)) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    for (a, b) in streamed.weights.iter().zip(&in_memory.weights) {
        assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
    }
}

#[test]
fn streamed_training_with_shuffling_learns_and_is_seeded() {
    let (x, y) = blobs(900, 10, 3, 2.0, 1);
    let s = ProbeSettings {
        shuffle: true,
        ..adam_fast()
    };
    let train = |seed| {
        train_probe_streamed(&blocks(&x, 10), 200, &y, &[], classification(3), &s, seed).unwrap()
    };
    let p = train(7);
    let accuracy = accuracy(&p.predict_classes(&x, 900), &y);
    assert!(accuracy > 0.95, "accuracy {accuracy}");
    assert_eq!(bits(&train(7).weights), bits(&p.weights));
    assert_ne!(bits(&train(8).weights), bits(&p.weights));
}

#[test]
fn streamed_training_refuses_fista_and_reports_bad_rows_globally() {
    let (mut x, y) = blobs(300, 4, 2, 1.0, 3);
    let error = train_probe_streamed(
        &blocks(&x, 4),
        64,
        &y,
        &[],
        classification(2),
        &fista(0.01, 0.0),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("store.in_memory_mb"), "{error}");
    x[250 * 4 + 2] = f32::NAN;
    let error = train_probe_streamed(
        &blocks(&x, 4),
        64,
        &y,
        &[],
        classification(2),
        &adam_fast(),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("x[250, 2]"), "{error}");
}

/// The device solver (what runs on a GPU) on the CPU against the fused one:
/// same batches, same formulae, so the weights agree to float rounding.
#[test]
fn the_device_solver_matches_the_fused_solver() {
    let (x, y) = blobs(600, 8, 3, 1.5, 11);
    for shuffle in [false, true] {
        let s = ProbeSettings {
            epochs: 4,
            batch_size: 64,
            learning_rate: 1e-2,
            l1: 1e-3,
            l2: 1e-3,
            shuffle,
            ..ProbeSettings::default()
        };
        let problem = RawInput {
            x: &x,
            rows: 600,
            cols: 8,
            labels: &y,
            targets: &[],
            task: classification(3),
        }
        .into_problem(false)
        .unwrap();
        let fused = super::solver_adam::train_adam(&problem, &s, 5, None).unwrap();
        let device =
            super::solver_device::train_adam_on(&Device::Cpu, &problem, &s, 5, None).unwrap();
        let worst = fused
            .weights
            .iter()
            .chain(&fused.bias)
            .zip(device.weights.iter().chain(&device.bias))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "shuffle {shuffle}: max |diff| {worst}");
        assert!(device.note.contains("on Cpu"), "{}", device.note);
    }
    // The regression loss too.
    let (x, t) = linear_targets(300, 5, 2);
    let problem = RawInput {
        x: &x,
        rows: 300,
        cols: 5,
        labels: &[],
        targets: &t,
        task: Task::Regression,
    }
    .into_problem(false)
    .unwrap();
    let s = adam_fast();
    let fused = super::solver_adam::train_adam(&problem, &s, 3, None).unwrap();
    let device = super::solver_device::train_adam_on(&Device::Cpu, &problem, &s, 3, None).unwrap();
    for (a, b) in fused.weights.iter().zip(&device.weights) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}

#[test]
fn a_gpu_device_without_the_cuda_feature_is_a_clear_error() {
    let s = ProbeSettings {
        device: "cuda:0".into(),
        ..ProbeSettings::default()
    };
    let message = s.validate().unwrap_err().to_string();
    if cfg!(feature = "cuda") {
        return;
    }
    assert!(
        message.contains("--features sieve-runner/cuda"),
        "{message}"
    );
    let s = ProbeSettings {
        device: "tpu".into(),
        ..ProbeSettings::default()
    };
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("`cpu`, `cuda` or `cuda:N`"));
}

#[test]
fn a_probe_bank_equals_probes_trained_one_by_one() {
    let cols = 9;
    let (x, y) = blobs(650, cols, 4, 1.0, 12);
    let ranges = [0..3, 3..9, 0..9, 2..5];
    for (shuffle, standardize) in [(false, false), (true, true), (true, false)] {
        let s = ProbeSettings {
            shuffle,
            standardize,
            epochs: 3,
            ..adam_fast()
        };
        let bank =
            train_probe_bank(&x, 650, cols, &y, &[], classification(4), &s, 5, &ranges).unwrap();
        assert_eq!(bank.len(), ranges.len());
        for (probe, r) in bank.iter().zip(&ranges) {
            let sub = data::column_range(&x, cols, r.clone());
            let alone = train_cls(&sub, &y, r.len(), 4, &s, 5);
            let what = format!("range {r:?} shuffle={shuffle} standardize={standardize}");
            assert_eq!(probe.features, r.len(), "{what}");
            // The same arithmetic in another order of probes: same bits.
            assert_eq!(bits(&probe.weights), bits(&alone.weights), "{what}");
            assert_eq!(bits(&probe.bias), bits(&alone.bias), "{what}");
            assert_eq!(probe.standardization, alone.standardization, "{what}");
        }
    }
}

#[test]
fn a_probe_bank_rejects_ranges_outside_the_matrix() {
    let (x, y) = blobs(50, 4, 2, 1.0, 3);
    let s = adam_fast();
    for bad in [2..6, 3..3] {
        let err = train_probe_bank(&x, 50, 4, &y, &[], classification(2), &s, 0, &[0..2, bad])
            .unwrap_err()
            .to_string();
        assert!(err.contains("column range"), "{err}");
    }
}

fn bf16(s: ProbeSettings) -> ProbeSettings {
    ProbeSettings {
        precision: Precision::Bf16,
        ..s
    }
}

/// Relative distance between two weight vectors.
fn relative_distance(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm).sqrt()
}

#[test]
fn a_bf16_probe_learns_what_the_f32_probe_learns() {
    // 40 columns: not whole tiles of 32, so the padding is exercised.
    let cols = 40;
    let (x, y) = blobs(900, cols, 3, 0.6, 21);
    let f32_probe = train_cls(&x, &y, cols, 3, &adam_fast(), 7);
    let bf16_probe = train_cls(&x, &y, cols, 3, &bf16(adam_fast()), 7);
    let acc = |p: &TrainedProbe| accuracy(&p.predict_classes(&x, 900), &y);
    assert!(
        acc(&bf16_probe) >= 0.95,
        "bf16 accuracy {}",
        acc(&bf16_probe)
    );
    assert!((acc(&bf16_probe) - acc(&f32_probe)).abs() <= 0.01);
    // Same init and batches; only the rounding of the products differs.
    let dist = relative_distance(&bf16_probe.weights, &f32_probe.weights);
    assert!(dist < 0.05, "weights {dist} apart");
    assert!(dist > 0.0, "the bf16 solver did not run");
    assert!(
        bf16_probe.solver_note.contains("precision=bf16"),
        "{}",
        bf16_probe.solver_note
    );
    assert!(!f32_probe.solver_note.contains("bf16"));
}

#[test]
fn a_bf16_regression_probe_recovers_a_linear_function() {
    let (x, t) = linear_targets(600, 6, 4);
    let s = bf16(ProbeSettings {
        l1: 0.0,
        l2: 0.0,
        ..adam_fast()
    });
    let p = train_probe(&x, 600, 6, &[], &t, Task::Regression, &s, 2).unwrap();
    let r = pearson(&p.predict_values(&x, 600), &t);
    assert!(r > 0.99, "pearson {r}");
}

#[test]
fn a_bf16_bank_equals_bf16_probes_trained_one_by_one() {
    let cols = 70;
    let (x, y) = blobs(300, cols, 4, 1.0, 13);
    // Ranges on 32-column steps share the batch layouts; 5..20 and 40..45
    // do not and get their own copy.
    let ranges = [0..3, 32..70, 5..20, 0..70, 64..69, 40..45];
    for (shuffle, standardize) in [(false, false), (true, true)] {
        let s = bf16(ProbeSettings {
            shuffle,
            standardize,
            epochs: 2,
            ..adam_fast()
        });
        let bank =
            train_probe_bank(&x, 300, cols, &y, &[], classification(4), &s, 5, &ranges).unwrap();
        for (probe, r) in bank.iter().zip(&ranges) {
            let sub = data::column_range(&x, cols, r.clone());
            let alone = train_cls(&sub, &y, r.len(), 4, &s, 5);
            let what = format!("range {r:?} shuffle={shuffle}");
            // Padding only ever meets zeros: the same sums, the same bits.
            assert_eq!(bits(&probe.weights), bits(&alone.weights), "{what}");
            assert_eq!(bits(&probe.bias), bits(&alone.bias), "{what}");
        }
    }
}

/// One prepared matrix trains several banks (the top-N search's groups):
/// each probe is still the probe of its range alone, in both precisions
/// and past the width from which bf16 lays the next batch out ahead.
#[test]
fn banks_from_one_prepared_matrix_equal_probes_trained_one_by_one() {
    let cols = 1100;
    let (x, y) = blobs(200, cols, 3, 1.0, 21);
    for s in [adam_fast(), bf16(adam_fast())] {
        let s = ProbeSettings {
            epochs: 2,
            standardize: true,
            ..s
        };
        let input = BankInput::new(&x, (200, cols), &y, &[], classification(3), &s, 9).unwrap();
        assert_eq!(input.cols(), cols);
        for ranges in [vec![0..40, 0..96], vec![0..1100, 0..1024, 0..64]] {
            for (probe, r) in input.train(&ranges).unwrap().iter().zip(&ranges) {
                let sub = data::column_range(&x, cols, r.clone());
                let alone = train_cls(&sub, &y, r.len(), 3, &s, 9);
                let what = format!("range {r:?} precision {:?}", s.precision);
                assert_eq!(bits(&probe.weights), bits(&alone.weights), "{what}");
                assert_eq!(bits(&probe.bias), bits(&alone.bias), "{what}");
                assert_eq!(probe.standardization, alone.standardization, "{what}");
            }
        }
    }
}

/// On several threads a bf16 bank's probes step on their own (see
/// `bf16::free_running`): whatever the number of threads, and so whatever
/// ran where and how far apart the probes drifted, every probe, its last
/// epoch's loss included, is the step-by-step bank's (one thread).
#[test]
fn a_free_running_bf16_bank_equals_the_step_by_step_bank_on_any_threads() {
    let cols = 96;
    // 301 rows: a short last batch; 10 batches per epoch and 3 epochs wrap
    // the ring of layouts many times.
    let (x, y) = blobs(301, cols, 5, 1.0, 17);
    let ranges = [0..96, 0..32, 0..96, 32..96, 0..64, 64..70];
    let s = bf16(ProbeSettings {
        epochs: 3,
        standardize: true,
        ..adam_fast()
    });
    let train_on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            train_probe_bank(&x, 301, cols, &y, &[], classification(5), &s, 3, &ranges).unwrap()
        })
    };
    let step_by_step = train_on(1);
    for threads in [2, 3, 5] {
        let free_running = train_on(threads);
        for ((a, b), r) in free_running.iter().zip(&step_by_step).zip(&ranges) {
            let what = format!("range {r:?} on {threads} threads");
            assert_eq!(bits(&a.weights), bits(&b.weights), "{what}");
            assert_eq!(bits(&a.bias), bits(&b.bias), "{what}");
            assert_eq!(
                a.solver_note, b.solver_note,
                "{what}: the last epoch's loss"
            );
        }
    }
}

#[test]
fn bf16_is_refused_where_it_does_not_apply() {
    for s in [
        bf16(fista(1e-3, 1e-3)),
        ProbeSettings {
            device: "cuda".into(),
            ..bf16(adam_fast())
        },
    ] {
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("precision bf16"), "{err}");
    }
}
