//! Times the downstream classifiers on the neurons a run selected:
//!
//! `cargo run --release -p sieve-runner --example downstream_speed -- STORE_DIR KEY REPORT_JSON [CLASSIFIER...]`
//!
//! e.g. `runs/activations c7074832f82eda51 runs/pos-wsj/report.json knn`.
//! Reads `selection.neurons` ([layer, neuron] pairs, column
//! `layer * hidden + neuron`) from the report, keeps those columns of every split, and prints
//! each classifier's time and dev/test accuracy. Set RAYON_NUM_THREADS to
//! pin the threads; `MAX_TRAIN_ROWS` and `TREES` override the spec defaults.
//! The pseudo-classifier `smartcore-svc` times one binary smartcore SVC
//! (linear kernel, most frequent class against the rest) on the first
//! `SVC_ROWS` (default 2000) standardised training rows, to judge whether a
//! one-vs-rest over smartcore's SVC would be affordable.

use std::path::PathBuf;

use sieve_runner::downstream::{train_and_score, ClassifierKind, DownstreamSpec};
use sieve_runner::store::{ActivationStore, Columns, StoredSplit};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, key, report, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: downstream_speed STORE_DIR KEY REPORT_JSON [CLASSIFIER...]");
    };
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
    let neurons: Vec<(usize, usize)> =
        serde_json::from_value(report["selection"]["neurons"].clone())?;
    let store = ActivationStore::new(&PathBuf::from(dir));
    let stored = store
        .load(key)?
        .ok_or_else(|| anyhow::anyhow!("no finished extraction {key} in {dir}"))?;
    let hidden = stored.manifest.identity.hidden_size as usize;
    let columns: Vec<usize> = neurons.iter().map(|&(l, n)| l * hidden + n).collect();
    let [train, dev, test] = &stored.splits[..] else {
        anyhow::bail!("the entry does not have three splits");
    };
    let num_classes = stored.manifest.labels.len();
    let selected = Columns::List(columns.clone());
    let pick = |split: &StoredSplit| split.gather(&selected);
    let (xtr, xdv, xte) = (pick(train)?, pick(dev)?, pick(test)?);
    let mut spec = DownstreamSpec::default();
    if let Ok(v) = std::env::var("MAX_TRAIN_ROWS") {
        spec.max_train_rows = v.parse()?;
    }
    if let Ok(v) = std::env::var("TREES") {
        spec.trees = v.parse()?;
    }
    let kinds: Vec<String> = if rest.is_empty() {
        spec.classifiers
            .iter()
            .map(|k| k.name().to_string())
            .collect()
    } else {
        rest.to_vec()
    };
    println!(
        "{} features, {num_classes} classes, rows train {} dev {} test {}",
        columns.len(),
        train.rows,
        dev.rows,
        test.rows
    );
    for kind in kinds {
        if kind == "smartcore-svc" {
            time_smartcore_svc(&xtr, train.targets.labels(), columns.len())?;
            continue;
        }
        let kind: ClassifierKind = serde_json::from_value(serde_json::Value::String(kind))?;
        let score = train_and_score(
            kind,
            &spec,
            columns.len(),
            num_classes,
            (&xtr, train.targets.labels()),
            (&xdv, dev.targets.labels()),
            (&xte, test.targets.labels()),
            42,
        )?;
        println!(
            "{:<20} {:>8.2} s  train rows {:>6}  dev {:.4}  test {:.4}  ({})",
            kind.name(),
            score.seconds,
            score.train_rows,
            score.dev,
            score.test,
            score.note
        );
    }
    Ok(())
}

fn time_smartcore_svc(x: &[f32], y: &[u32], features: usize) -> anyhow::Result<()> {
    use smartcore::linalg::basic::matrix::DenseMatrix;
    use smartcore::svm::svc::{SVCParameters, SVC};
    use smartcore::svm::Kernels;

    let rows: usize = std::env::var("SVC_ROWS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(2000)
        .min(y.len());
    let x = &x[..rows * features];
    let mut mean = vec![0.0f64; features];
    let mut sq = vec![0.0f64; features];
    for row in x.chunks_exact(features) {
        for (f, &v) in row.iter().enumerate() {
            mean[f] += v as f64;
            sq[f] += (v as f64) * (v as f64);
        }
    }
    let n = rows as f64;
    let z: Vec<f64> = x
        .chunks_exact(features)
        .flat_map(|row| {
            row.iter().enumerate().map(|(f, &v)| {
                let m = mean[f] / n;
                let sd = (sq[f] / n - m * m).max(0.0).sqrt();
                if sd > 1e-12 {
                    (v as f64 - m) / sd
                } else {
                    0.0
                }
            })
        })
        .collect::<Vec<_>>();
    let mut counts = std::collections::HashMap::new();
    for &l in &y[..rows] {
        *counts.entry(l).or_insert(0usize) += 1;
    }
    let top = counts
        .iter()
        .max_by_key(|(l, c)| (**c, **l))
        .map(|(l, _)| *l);
    let target: Vec<i32> = y[..rows]
        .iter()
        .map(|&l| if Some(l) == top { 1 } else { -1 })
        .collect();
    let matrix = DenseMatrix::new(rows, features, z, false).map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = SVCParameters::default()
        .with_c(1.0)
        .with_kernel(Kernels::linear())
        .with_seed(Some(42));
    let started = std::time::Instant::now();
    let model = SVC::fit(&matrix, &target, &params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let pred = model.predict(&matrix).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hits = pred
        .iter()
        .zip(&target)
        .filter(|(p, t)| (**p > 0.0) == (**t > 0))
        .count();
    println!(
        "smartcore SVC, one binary problem on {rows} rows: fit {seconds:.2} s, train accuracy {:.4}",
        hits as f64 / rows as f64
    );
    Ok(())
}
