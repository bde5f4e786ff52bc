//! Times the probe at the size of a BERT-base layer-selection run:
//! `cargo run --release -p sieve-runner --example probe_speed [rows cols classes]`
//! `[rows cols classes fista_iters adam]` (default 20,000 x 2,688 x 45, 50
//! FISTA iterations; a fifth argument `adam` or `fista` runs only that solver,
//! `bf16` the shuffled Adam recipe with f32 and with bf16 products).
//! Set RAYON_NUM_THREADS to pin the threads.

use std::time::Instant;

use sieve_runner::probe::{
    accuracy, train_probe, Precision, ProbeSettings, Solver, SplitMix64, Task,
};

/// Noisy class centres: a learnable, reproducible stand-in for activations.
fn synthetic(rows: usize, cols: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
    let mut rng = SplitMix64::new(2020);
    let centres: Vec<f32> = (0..classes * cols).map(|_| rng.uniform_sym(0.3)).collect();
    let mut x = Vec::with_capacity(rows * cols);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let c = rng.below(classes);
        y.push(c as u32);
        let centre = &centres[c * cols..(c + 1) * cols];
        x.extend(centre.iter().map(|&m| m + rng.uniform_sym(1.0)));
    }
    (x, y)
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn run(name: &str, x: &[f32], y: &[u32], cols: usize, classes: usize, s: &ProbeSettings) {
    let task = Task::Classification {
        num_classes: classes,
    };
    let t0 = Instant::now();
    let p = train_probe(x, y.len(), cols, y, &[], task, s, 1).expect("training works");
    let train_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let pred = p.predict_classes(x, y.len());
    let predict_s = t1.elapsed().as_secs_f64();
    // FNV-1a over the weight bits: equal hashes = bit-identical probes.
    let hash = p
        .weights
        .iter()
        .chain(&p.bias)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
            (h ^ w.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
        });
    println!(
        "{name}: train {train_s:.3} s, predict {predict_s:.3} s, train acc {:.4}, weights hash {hash:016x}\n  note: {}",
        accuracy(&pred, y),
        p.solver_note
    );
}

fn main() {
    let (rows, cols, classes) = (arg(1, 20_000), arg(2, 2_688), arg(3, 45));
    let t0 = Instant::now();
    let (x, y) = synthetic(rows, cols, classes);
    println!(
        "data {rows} x {cols}, {classes} classes, generated in {:.2} s, threads {}",
        t0.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let only = std::env::args().nth(5).unwrap_or_default();
    if only == "bf16" || only == "bf16-only" {
        // The shuffled recipe with f32 and with bf16 products, side by side
        // (`bf16-only`: bf16 alone, e.g. under a profiler).
        if only == "bf16" {
            let f32_products = ProbeSettings::default();
            run("adam shuffled, f32", &x, &y, cols, classes, &f32_products);
        }
        let bf16_products = ProbeSettings {
            precision: Precision::Bf16,
            ..ProbeSettings::default()
        };
        run("adam shuffled, bf16", &x, &y, cols, classes, &bf16_products);
        return;
    }
    if only != "fista" {
        run(
            "adam paper (file order)",
            &x,
            &y,
            cols,
            classes,
            &ProbeSettings::paper(),
        );
    }
    if only == "adam" {
        return;
    }
    if only != "fista" {
        run(
            "adam shuffled",
            &x,
            &y,
            cols,
            classes,
            &ProbeSettings::default(),
        );
        let std = ProbeSettings {
            standardize: true,
            ..ProbeSettings::paper()
        };
        run("adam paper + standardize", &x, &y, cols, classes, &std);
    }
    let fista = ProbeSettings {
        solver: Solver::Fista,
        l1: 1e-3,
        l2: 1e-4,
        max_iter: arg(4, 50),
        ..ProbeSettings::default()
    };
    run("fista", &x, &y, cols, classes, &fista);
}
