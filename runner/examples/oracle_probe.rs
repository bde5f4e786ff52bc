//! Times the oracle probe (all stored features) on a real store entry, for
//! the comparison with scikit-learn in BENCHMARKS.md:
//!
//! `cargo run --release -p sieve-runner --example oracle_probe -- STORE_DIR KEY [adam|fista] [standardize]`
//!
//! Prints the training time and the dev/test accuracy. Set
//! RAYON_NUM_THREADS to pin the threads.

use std::path::PathBuf;
use std::time::Instant;

use sieve_runner::probe::{accuracy, train_probe, ProbeSettings, Solver, Task};
use sieve_runner::store::ActivationStore;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, key, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: oracle_probe STORE_DIR KEY [adam|fista] [standardize] [shuffle]");
    };
    let store = ActivationStore::new(&PathBuf::from(dir));
    let stored = store
        .load(key)?
        .ok_or_else(|| anyhow::anyhow!("no finished extraction {key} in {dir}"))?;
    let mut settings = ProbeSettings::paper();
    if rest.iter().any(|a| a == "fista") {
        settings.solver = Solver::Fista;
    }
    settings.standardize = rest.iter().any(|a| a == "standardize");
    settings.shuffle = rest.iter().any(|a| a == "shuffle");
    let [train, dev, test] = &stored.splits[..] else {
        anyhow::bail!("the entry does not have three splits");
    };
    let task = Task::Classification {
        num_classes: stored.manifest.labels.len(),
    };
    let x = train.all_columns()?;
    let started = Instant::now();
    let probe = train_probe(
        &x,
        train.rows,
        train.cols,
        train.targets.labels(),
        train.targets.values(),
        task,
        &settings,
        42,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let score = |split: &sieve_runner::store::StoredSplit| -> anyhow::Result<f64> {
        Ok(accuracy(
            &probe.predict_classes(&split.all_columns()?, split.rows),
            split.targets.labels(),
        ))
    };
    println!(
        "{} x {} features, {:?}{}: {seconds:.2} s, dev {:.4}, test {:.4} ({})",
        train.rows,
        train.cols,
        settings.solver,
        if settings.standardize {
            " standardised"
        } else {
            ""
        },
        score(dev)?,
        score(test)?,
        probe.solver_note
    );
    Ok(())
}
