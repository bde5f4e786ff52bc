//! `sieve bench SPEC`: extraction throughput, full and truncated.
//!
//! Every unit of the spec's three splits goes through the backend once per
//! setting; the number reported is subword tokens per second of the
//! fastest of `repeat` passes. Truncation shows as the time of a pass that
//! stops at hidden state L relative to the full pass.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use sieve_core::PluginKind;

use crate::data::Unit;
use crate::pipeline::corpora::read_splits;
use crate::pipeline::extract::{progress_bar, Extractor};
use crate::pipeline::{backend_params, open_registry};
use crate::spec::{check_files, load_spec};
use crate::util::atomic::write_atomic;

#[derive(Debug, Serialize)]
struct Measurement {
    last_layer: u32,
    subword_tokens: u64,
    seconds: f64,
    tokens_per_second: f64,
    /// This pass's time over the full pass's time.
    relative_time: f64,
}

pub fn bench(spec_path: &Path, layers: &[u32], repeat: usize, json: Option<&Path>) -> Result<()> {
    super::logging::init_stderr();
    let loaded = load_spec(spec_path)?;
    check_files(&loaded)?;
    super::set_threads(loaded.spec.threads);
    let registry = open_registry(&loaded)?;
    let name = &loaded.spec.model.backend.value;
    let plugin = registry.find(name, PluginKind::Backend)?.clone();
    let encoder = registry.open_backend(name, &backend_params(&loaded)?)?;
    let description = encoder.describe();
    let splits = read_splits(&loaded)?;
    let units: Vec<Unit> = splits.splits.iter().flatten().cloned().collect();
    let full = description.num_layers;
    let mut settings: Vec<u32> = if layers.is_empty() {
        (0..=full).rev().collect()
    } else {
        layers.to_vec()
    };
    if let Some(bad) = settings.iter().find(|&&l| l > full) {
        anyhow::bail!("--layers: {bad} is beyond the model's last hidden state {full}");
    }
    if !settings.contains(&full) {
        settings.insert(0, full);
    }
    let threads = rayon::current_num_threads();
    println!(
        "extraction benchmark: backend '{}', model '{}' ({} layers x {}), {} units, {threads} threads",
        plugin.name,
        description.name,
        description.num_layers,
        description.hidden_size,
        units.len()
    );
    let mut extractor = Extractor {
        plugin: &plugin,
        encoder: &encoder,
        loaded: &loaded,
        last_layer: full,
    };
    let mut results = Vec::new();
    for &last_layer in &settings {
        extractor.last_layer = last_layer;
        // Warm-up of every setting, as the Python script does: a truncated
        // setting builds its own session (pruned graph) on first use, and
        // weights and allocator pools are touched for the first time.
        extractor.encode_units(
            &units[..units.len().min(64)],
            &indicatif::ProgressBar::hidden(),
        )?;
        let mut best: Option<(f64, u64)> = None;
        for _ in 0..repeat {
            let bar = progress_bar(&format!("L={last_layer}"), units.len());
            // Each call's rows are kept as the backend returned them (as
            // the Python script keeps its per-unit arrays), not copied into
            // one matrix: that copy belongs to the store, not to extraction.
            let mut kept = Vec::new();
            let start = Instant::now();
            extractor.for_each_call(&units, &bar, |rows| kept.push(rows))?;
            let seconds = start.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let tokens = kept.iter().map(|r| r.subword_tokens).sum();
            drop(kept);
            if best.is_none_or(|(s, _)| seconds < s) {
                best = Some((seconds, tokens));
            }
        }
        let (seconds, tokens) = best.unwrap_or((0.0, 0));
        results.push((last_layer, seconds, tokens));
    }
    let full_seconds = results
        .iter()
        .find(|(l, _, _)| *l == full)
        .map(|r| r.1)
        .unwrap_or(1.0);
    let measurements: Vec<Measurement> = results
        .into_iter()
        .map(|(last_layer, seconds, tokens)| Measurement {
            last_layer,
            subword_tokens: tokens,
            seconds,
            tokens_per_second: tokens as f64 / seconds.max(1e-9),
            relative_time: seconds / full_seconds.max(1e-9),
        })
        .collect();
    print_table(&measurements, full);
    if let Some(path) = json {
        write_atomic(
            path,
            serde_json::to_string_pretty(&measurements)?.as_bytes(),
        )?;
    }
    Ok(())
}

fn print_table(measurements: &[Measurement], full: u32) {
    println!("| last hidden state L | tokens | seconds | tokens/s | time vs full | L/{full} |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for m in measurements {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.3} | {:.3} |",
            m.last_layer,
            m.subword_tokens,
            m.seconds,
            m.tokens_per_second,
            m.relative_time,
            m.last_layer as f64 / full as f64
        );
    }
}
