//! The plugin's partition equals SciPy's (scripts/reference/scipy_clustering.py)
//! on a fixed matrix with planted correlated groups, an anti-correlated
//! copy, a large-offset column, a constant column and a tiny-scale column.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use sieve_core::MatrixView;
use sieve_selector_correlation::{cluster_columns, Linkage, Params, Representative};

const ROWS: usize = 200;
const COLS: usize = 60;
const THRESHOLDS: [f64; 4] = [0.1, 0.3, 0.5, 0.7];
/// Noise beside a unit factor for the six columns of each planted group:
/// their correlation with the factor runs from 0.999 down to 0.37, so the
/// groups split differently at each threshold.
const NOISE: [f64; 6] = [0.05, 0.3, 0.6, 1.0, 1.5, 2.5];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Marsaglia xorshift64 with Box-Muller normals: fixed, dependency-free.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Row-major `ROWS x COLS`. Columns 0..48 follow factor `c % 8` with noise
/// `NOISE[c / 8]`, each at its own scale; 48..55
/// are pure noise; 55 is an anti-correlated copy of factor 1; 56 is factor 2
/// shifted by 1000; 57 is constant; 58 is a 1e-9-scale copy of factor 0
/// (near-constant by the plugin's rule); 59 is noise at scale 1e-3 (small,
/// but well above the rule's floor).
fn planted_matrix() -> Vec<f32> {
    let mut rng = Rng(0x5eed_c0ff_ee00_0001);
    let mut x = vec![0.0f32; ROWS * COLS];
    for r in 0..ROWS {
        let factors: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
        let row = &mut x[r * COLS..(r + 1) * COLS];
        for (c, v) in row.iter_mut().enumerate().take(48) {
            let signal = factors[c % 8] + NOISE[c / 8] * rng.normal();
            *v = (signal * (1.0 + 0.1 * c as f64)) as f32;
        }
        for v in row.iter_mut().take(55).skip(48) {
            *v = rng.normal() as f32;
        }
        row[55] = (-2.0 * factors[1] + 0.2 * rng.normal()) as f32;
        row[56] = (1000.0 + factors[2] + 0.2 * rng.normal()) as f32;
        row[57] = 3.25;
        row[58] = (1e-9 * (factors[0] + 0.05 * rng.normal())) as f32;
        row[59] = (1e-3 * rng.normal()) as f32;
    }
    x
}

/// Writes a float32 `.npy` (format 1.0) so the script sees the exact bits.
fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header, padded to 64 with '\n' last.
    let unpadded = 10 + dict.len() + 1;
    let header = format!("{dict}{}\n", " ".repeat((64 - unpadded % 64) % 64));
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let mut f = std::fs::File::create(path).expect("create .npy");
    f.write_all(&bytes).expect("write .npy");
}

/// Runs the reference script; returns (near-constant columns, partitions).
fn scipy_partitions(npy: &Path, method: &str) -> (Vec<usize>, Vec<Vec<u32>>) {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    let thresholds: Vec<String> = THRESHOLDS.iter().map(|t| t.to_string()).collect();
    let out = Command::new(&python)
        .arg(repo_root().join("scripts/reference/scipy_clustering.py"))
        .arg(npy)
        .args(["--thresholds", &thresholds.join(","), "--method", method])
        .output()
        .expect("run the reference script");
    assert!(
        out.status.success(),
        "scipy_clustering.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("script output is JSON");
    let near = json["near_constant"]
        .as_array()
        .expect("near_constant")
        .iter()
        .map(|v| v.as_u64().expect("index") as usize)
        .collect();
    let partitions = thresholds
        .iter()
        .map(|t| {
            json["partitions"][t]
                .as_array()
                .expect("partition")
                .iter()
                .map(|v| v.as_u64().expect("label") as u32)
                .collect()
        })
        .collect();
    (near, partitions)
}

/// Relabels clusters by order of first appearance, so that two labelings of
/// the same partition compare equal.
fn canonical(labels: &[u32]) -> Vec<u32> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len() as u32;
            *map.entry(l).or_insert(next)
        })
        .collect()
}

fn check_method(linkage: Linkage) {
    let data = planted_matrix();
    let dir = tempfile::tempdir().expect("temp dir");
    let npy = dir.path().join("planted.npy");
    write_npy(&npy, &data, ROWS, COLS);
    let (near, scipy) = scipy_partitions(&npy, linkage.as_str());
    let x = MatrixView::new(&data, ROWS, COLS).expect("shape");
    for (t, want) in THRESHOLDS.iter().zip(&scipy) {
        let params = Params {
            threshold: *t,
            linkage,
            representative: Representative::First,
        };
        let ours = cluster_columns(&x, &params, 0);
        assert_eq!(ours.near_constant, near, "near-constant columns");
        let clusters = ours.clusters.len();
        assert_eq!(
            canonical(&ours.labels),
            canonical(want),
            "{linkage} linkage, t={t}: {clusters} clusters here"
        );
    }
}

#[test]
fn average_linkage_partitions_equal_scipy() {
    check_method(Linkage::Average);
}

#[test]
fn other_linkages_partitions_equal_scipy() {
    for linkage in [Linkage::Single, Linkage::Complete, Linkage::Weighted] {
        check_method(linkage);
    }
}

#[test]
fn the_planted_matrix_exercises_the_cut() {
    // Guard against a vacuous comparison: the thresholds must give
    // different, non-trivial partitions, and the special columns must land
    // where the design says.
    let data = planted_matrix();
    let x = MatrixView::new(&data, ROWS, COLS).expect("shape");
    let counts: Vec<usize> = THRESHOLDS
        .iter()
        .map(|&threshold| {
            let params = Params {
                threshold,
                ..Params::default()
            };
            cluster_columns(&x, &params, 0).clusters.len()
        })
        .collect();
    eprintln!("clusters per threshold {THRESHOLDS:?}: {counts:?}");
    assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
    assert!(
        counts[0] < COLS && *counts.last().unwrap() > 1,
        "{counts:?}"
    );
    let params = Params::default();
    let c = cluster_columns(&x, &params, 0);
    assert_eq!(c.near_constant, vec![57, 58]);
    assert_eq!(
        c.labels[55], c.labels[1],
        "anti-correlated copy joins its group"
    );
    assert_eq!(
        c.labels[56], c.labels[2],
        "large offset does not hide correlation"
    );
}
