//! The human-readable report (also printed at the end of `sieve run`).

use std::fmt::Write;

use super::Report;

/// The report as Markdown: the model, the baseline and oracle, the
/// per-layer table and where the time went.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.model;
    let _ = writeln!(out, "# {}\n", report.name);
    let _ = writeln!(
        out,
        "Model: {} ({}, backend {} {}), {} hidden states x {} = {} features.  ",
        m.name, m.architecture, m.backend, m.backend_version, m.layers, m.hidden, m.features
    );
    let d = &report.data;
    let _ = writeln!(
        out,
        "Task: {} ({} classes), rows train {} / dev {} / test {}. Metric: {}. Probe: {}.\n",
        d.task, d.classes, d.train_rows, d.dev_rows, d.test_rows, report.metric, report.probe
    );
    for warning in &report.warnings {
        let _ = writeln!(out, "**Warning:** {warning}\n");
    }
    write_summary(&mut out, report);
    write_layer_table(&mut out, report);
    write_timings(&mut out, report);
    out
}

fn pct(value: f64) -> String {
    format!("{:.2}", value * 100.0)
}

fn write_summary(out: &mut String, report: &Report) {
    let _ = writeln!(out, "| | features | dev | test |\n|---|---:|---:|---:|");
    if let Some(baseline) = &report.majority_baseline {
        let _ = writeln!(
            out,
            "| majority class | 0 | {} | {} |",
            pct(baseline.dev),
            pct(baseline.test)
        );
    }
    let o = &report.oracle;
    let _ = writeln!(out, "| oracle (all layers) | {} | {} | {} |\n", o.features, pct(o.dev), pct(o.test));
}

fn write_layer_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "Probe {} (%) per hidden state k (0 = embeddings):\n",
        report.metric
    );
    let _ = writeln!(
        out,
        "| k | layer k alone: dev | test | layers 0..k: dev | test |\n|---:|---:|---:|---:|---:|"
    );
    for row in &report.layers {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.k,
            pct(row.single_dev),
            pct(row.single_test),
            pct(row.cumulative_dev),
            pct(row.cumulative_test)
        );
    }
    out.push('\n');
}

fn write_timings(out: &mut String, report: &Report) {
    let t = &report.timings;
    let e = &report.extraction;
    let extraction = if e.reused {
        "reused from the store".to_string()
    } else {
        format!(
            "{} subword tokens, {:.0} tokens/s",
            e.subword_tokens, e.tokens_per_second
        )
    };
    let _ = writeln!(
        out,
        "Time (s): plugins {:.2}, data {:.2}, extraction {:.2} ({extraction}), layer probes {:.2}, total {:.2}.",
        t.load_plugins, t.read_data, t.extraction, t.layer_probes, t.total
    );
}
