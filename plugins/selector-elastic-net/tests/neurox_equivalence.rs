//! The plugin's ordering equals the NumPy reference
//! (scripts/reference/neurox_ordering.py) on fixed weights: same cutoffs,
//! same set of neurons in every step, same full order.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use sieve_selector_elastic_net::{neuron_ordering, top_neurons, NeuronOrdering, Weights};

const CLASSES: usize = 5;
const FEATURES: usize = 80;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// xorshift64: fixed and dependency-free.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How the test weights are made.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Continuous values, about 30% exact zeros.
    Continuous,
    /// Multiples of 1/8: many ties in |w| within a class and in mass.
    Quantized,
    /// Continuous, and class 2 has no weight at all.
    DeadClass,
}

/// `CLASSES x FEATURES`, row-major; the last feature is zero everywhere.
fn weights(kind: Kind, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut w = vec![0.0f32; CLASSES * FEATURES];
    for c in 0..CLASSES {
        for j in 0..FEATURES - 1 {
            let zero = rng.uniform() < 0.3;
            let v = (rng.uniform() * 4.0 - 2.0) * rng.uniform().powi(3);
            w[c * FEATURES + j] = match (zero, kind) {
                (true, _) => 0.0,
                (false, Kind::Quantized) => ((v * 8.0).round() / 8.0) as f32,
                (false, Kind::DeadClass) if c == 2 => 0.0,
                (false, _) => v as f32,
            };
        }
    }
    w
}

/// Runs the reference script on `w`; returns (order, cutoffs).
fn reference(w: &[f32], stride: u32) -> (Vec<u32>, Vec<u32>) {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    let rows: Vec<String> = w
        .chunks(FEATURES)
        .map(|row| {
            let values: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            format!("[{}]", values.join(","))
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("weights.json");
    let json = format!(r#"{{"stride": {stride}, "weights": [{}]}}"#, rows.join(","));
    std::fs::write(&path, json).expect("write weights");
    let out = Command::new(&python)
        .arg(repo_root().join("scripts/reference/neurox_ordering.py"))
        .arg(&path)
        .output()
        .expect("run the reference script");
    assert!(
        out.status.success(),
        "neurox_ordering.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let list = |key: &str| -> Vec<u32> {
        v[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|x| x.as_u64().expect("integer") as u32)
            .collect()
    };
    (list("order"), list("cutoffs"))
}

/// The neurons of each step, as sets.
fn steps(order: &[u32], cutoffs: &[u32]) -> Vec<BTreeSet<u32>> {
    let mut start = 0;
    cutoffs
        .iter()
        .map(|&end| {
            let step = order[start..end as usize].iter().copied().collect();
            start = end as usize;
            step
        })
        .collect()
}

fn compare(kind: Kind, seed: u64, stride: u32) {
    let w = weights(kind, seed);
    let ours = neuron_ordering(&Weights::new(&w, CLASSES, FEATURES).expect("shape"), stride);
    let (order, cutoffs) = reference(&w, stride);
    let context = format!("{kind:?} seed {seed} stride {stride}");
    assert_eq!(ours.cutoffs, cutoffs, "cutoffs, {context}");
    assert_eq!(
        steps(&ours.order, &ours.cutoffs),
        steps(&order, &cutoffs),
        "step sets, {context}"
    );
    assert_eq!(ours.order, order, "full order, {context}");
}

#[test]
fn ordering_equals_the_numpy_reference() {
    for (kind, seed) in [
        (Kind::Continuous, 11),
        (Kind::Continuous, 12),
        (Kind::Quantized, 13),
        (Kind::DeadClass, 14),
    ] {
        for stride in [1, 10, 1000] {
            compare(kind, seed, stride);
        }
    }
}

/// Each step's prefix of the ordering is exactly `top_neurons` at that
/// step's fraction (prefixes only grow with the fraction).
#[test]
fn every_cutoff_prefix_is_the_top_neuron_set() {
    let w = weights(Kind::Continuous, 21);
    let weights = Weights::new(&w, CLASSES, FEATURES).expect("shape");
    let stride = 50;
    let NeuronOrdering { order, cutoffs, .. } = neuron_ordering(&weights, stride);
    for (i, &end) in cutoffs.iter().take(stride as usize + 1).enumerate() {
        let mut prefix = order[..end as usize].to_vec();
        prefix.sort_unstable();
        let top = top_neurons(&weights, i as f64 / f64::from(stride));
        assert_eq!(prefix, top, "step {i}");
    }
    let mut all = order.clone();
    all.sort_unstable();
    assert_eq!(all, (0..FEATURES as u32).collect::<Vec<_>>());
    assert_eq!(*cutoffs.last().expect("cutoffs"), FEATURES as u32);
    assert_eq!(
        *order.last().expect("order"),
        FEATURES as u32 - 1,
        "zero feature last"
    );
}
