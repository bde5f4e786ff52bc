//! The human-readable report (also printed at the end of `sieve run`).

use std::fmt::Write;

use super::{removed_fraction, Report, SelectionSummary};
use crate::probe::{Precision, ProbeSettings, Solver};

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
        d.task,
        d.classes,
        d.train_rows,
        d.dev_rows,
        d.test_rows,
        report.metric,
        probe_text(&report.probe)
    );
    for warning in &report.warnings {
        let _ = writeln!(out, "**Warning:** {warning}\n");
    }
    write_summary(&mut out, report);
    write_control(&mut out, report);
    write_downstream(&mut out, report);
    write_comparison(&mut out, report);
    write_layer_table(&mut out, report);
    write_timings(&mut out, report);
    for chart in report.plots.iter().filter(|p| p.ends_with(".svg")) {
        let _ = writeln!(out, "\n![{chart}]({chart})");
    }
    out
}

/// The probe's settings in words, those of its solver only, e.g. `adam
/// (l1 0.00001, l2 0.00001, learning_rate 0.001, epochs 10, ...)`.
fn probe_text(p: &ProbeSettings) -> String {
    let precision = match p.precision {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
    };
    match p.solver {
        Solver::Adam => format!(
            "adam (l1 {}, l2 {}, learning_rate {}, epochs {}, batch_size {}, shuffle {}, standardize {}, device {}, precision {precision})",
            p.l1, p.l2, p.learning_rate, p.epochs, p.batch_size, p.shuffle, p.standardize, p.device
        ),
        Solver::Fista => format!(
            "fista (l1 {}, l2 {}, max_iter {}, tolerance {}, standardize {})",
            p.l1, p.l2, p.max_iter, p.tolerance, p.standardize
        ),
    }
}

/// Scores are printed x100: percent for accuracy, r x 100 for Pearson.
fn unit(report: &Report) -> &'static str {
    if report.metric == "accuracy" {
        "%"
    } else {
        "r x 100"
    }
}

fn pct(value: f64) -> String {
    format!("{:.2}", value * 100.0)
}

/// A score, or "-" for a probe that was not trained.
fn pct_or_dash(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), pct)
}

fn write_summary(out: &mut String, report: &Report) {
    let _ = writeln!(out, "Scores: {} ({}).\n", report.metric, unit(report));
    let total = report.model.features as usize;
    let reduction = |features: usize| format!("{:.1}", 100.0 * removed_fraction(features, total));
    let _ = writeln!(
        out,
        "| | layers | features | reduction % | dev | test |\n|---|---|---:|---:|---:|---:|"
    );
    if let Some(baseline) = &report.majority_baseline {
        let _ = writeln!(
            out,
            "| majority class | | 0 | | {} | {} |",
            pct(baseline.dev),
            pct(baseline.test)
        );
    }
    let last = report.model.layers.saturating_sub(1);
    let o = &report.oracle;
    let _ = writeln!(
        out,
        "| oracle (all layers) | 0..{last} | {} | 0.0 | {} | {} |",
        o.features,
        pct(o.dev),
        pct(o.test)
    );
    let mut layers = format!("0..{last}");
    if let Some(ls) = &report.layer_selector {
        layers = format!("0..{}", ls.k);
        let _ = writeln!(
            out,
            "| LayerSelector (delta {}%) | {layers} | {} | {} | {} | {} |",
            percent_text(ls.max_relative_drop),
            ls.features,
            reduction(ls.features),
            pct(ls.dev),
            pct(ls.test)
        );
    }
    if let Some(cc) = &report.clustering {
        let _ = writeln!(
            out,
            "| {} clustering ({}) | {layers} | {} | {} | {} | {} |",
            cc.selector,
            compact_params(&cc.params),
            cc.features,
            reduction(cc.features),
            pct(cc.dev),
            pct(cc.test)
        );
    }
    if let Some(sel) = &report.selection {
        let rule = match sel.budget_features {
            Some(n) => format!("budget {n}"),
            None => format!("delta {}%", percent_text(sel.max_relative_drop)),
        };
        let _ = writeln!(
            out,
            "| top-N by {} ({rule}) | {} | {} | {:.1} | {} | {} |",
            sel.selector,
            selected_layers(&sel.neurons),
            sel.features,
            100.0 * sel.removed_fraction,
            pct(sel.dev),
            pct(sel.test)
        );
    }
    out.push('\n');
    if let Some(sel) = &report.selection {
        write_candidates(out, sel);
    }
}

/// `{"threshold":0.3}` as `threshold 0.3`.
fn compact_params(params: &serde_json::Value) -> String {
    match params.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "defaults".into(),
    }
}

/// The layers the selected neurons come from, e.g. `0-3`.
fn selected_layers(neurons: &[[u32; 2]]) -> String {
    let min = neurons.iter().map(|n| n[0]).min();
    let max = neurons.iter().map(|n| n[0]).max();
    match (min, max) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => String::new(),
    }
}

/// A fraction as the percent the spec wrote (0.01 -> `1`), without the
/// float noise of the conversion (0.035 * 100 = 3.5000000000000004).
fn percent_text(fraction: f64) -> String {
    let percent = fraction * 100.0;
    let rounded = (percent * 1e9).round() / 1e9;
    format!("{rounded}")
}

fn write_candidates(out: &mut String, sel: &SelectionSummary) {
    let rule = match sel.budget_features {
        Some(n) => format!("a fixed budget of {n} neurons"),
        None => format!("keep the first N with dev > {}", pct(sel.dev_threshold)),
    };
    let _ = writeln!(
        out,
        "Top-N search ({rule}):\n\n| N | dev | test |\n|---:|---:|---:|"
    );
    for c in &sel.candidates {
        let mark = if c.n == sel.features { " (chosen)" } else { "" };
        let _ = writeln!(out, "| {}{mark} | {} | {} |", c.n, pct(c.dev), pct(c.test));
    }
    out.push('\n');
}

/// Task and control-task scores with selectivity (test).
fn write_control(out: &mut String, report: &Report) {
    let Some(control) = &report.control else {
        return;
    };
    let _ = writeln!(
        out,
        "Control task (a random label per word type, Hewitt & Liang), test:\n\n\
         | | features | task | control | selectivity |\n|---|---:|---:|---:|---:|"
    );
    let rows = [
        ("oracle", Some(&control.oracle)),
        ("selection", control.selection.as_ref()),
    ];
    for (name, row) in rows {
        if let Some(row) = row {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                row.features,
                pct(row.task.test),
                pct(row.control.test),
                pct(row.selectivity.test)
            );
        }
    }
    out.push('\n');
}

/// Downstream classifiers next to the linear probe on the same features.
fn write_downstream(out: &mut String, report: &Report) {
    let Some(downstream) = &report.downstream else {
        return;
    };
    let _ = writeln!(
        out,
        "Downstream classifiers on the {} {} features ({}):\n\n\
         | classifier | train rows | dev | test | seconds | implementation |\n\
         |---|---:|---:|---:|---:|---|",
        downstream.features,
        downstream.feature_set,
        unit(report)
    );
    let _ = writeln!(
        out,
        "| linear probe | {} | {} | {} | | the run's probe |",
        report.data.train_rows,
        pct(downstream.probe.dev),
        pct(downstream.probe.test)
    );
    for score in &downstream.classifiers {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} |",
            score.classifier.name(),
            score.train_rows,
            pct(score.dev),
            pct(score.test),
            score.seconds,
            score.note
        );
    }
    out.push('\n');
}

/// One row per candidate N, one test-score column per ranker.
fn write_comparison(out: &mut String, report: &Report) {
    let curves = &report.comparison;
    let Some(first) = curves.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "Rankers compared on the same neurons (test {}, {}):\n",
        report.metric,
        unit(report)
    );
    let names: Vec<String> = curves.iter().map(|c| c.label()).collect();
    let _ = writeln!(out, "| N | {} |", names.join(" | "));
    let _ = writeln!(out, "|---:|{}", "---:|".repeat(curves.len()));
    for (row, point) in first.points.iter().enumerate() {
        let cells: Vec<String> = curves
            .iter()
            .map(|c| c.points.get(row).map(|p| pct(p.test)).unwrap_or_default())
            .collect();
        let _ = writeln!(out, "| {} | {} |", point.n, cells.join(" | "));
    }
    let times: Vec<String> = curves.iter().map(|c| format!("{:.2}", c.seconds)).collect();
    let _ = writeln!(out, "| ranking time (s) | {} |\n", times.join(" | "));
}

fn write_layer_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "Probe {} ({}) per hidden state k (0 = embeddings):\n",
        report.metric,
        unit(report)
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
            pct_or_dash(row.single_dev),
            pct_or_dash(row.single_test),
            pct_or_dash(row.cumulative_dev),
            pct_or_dash(row.cumulative_test)
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
    let probes = if report.results_reused {
        "reused from results.json".to_string()
    } else {
        format!("{:.2}", t.layer_probes)
    };
    let s = &t.selection;
    let mut stages = String::new();
    if report.clustering.is_some() {
        let _ = write!(stages, "clustering {:.2}, ", s.clustering);
    }
    if report.selection.is_some() {
        // The ranking trains beside the clustering's probe (see
        // `SelectionRun::run`), so the stages can add up to more than
        // the selection took.
        let overlap = if report.clustering.is_some() {
            " beside the clustering's probe"
        } else {
            ""
        };
        let _ = write!(
            stages,
            "ranking {:.2}{overlap}, top-N search {:.2}, selection in all {:.2}, ",
            s.ranking, s.top_n, s.total
        );
    }
    if report.downstream.is_some() {
        let _ = write!(stages, "downstream {:.2}, ", t.downstream);
    }
    let _ = writeln!(
        out,
        "Time (s): plugins {:.2}, data {:.2}, extraction {:.2} ({extraction}), layer probes {probes}, \
         {stages}total {:.2}.",
        t.load_plugins, t.read_data, t.extraction, t.total
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_settings_read_as_the_spec_writes_them() {
        let adam = probe_text(&ProbeSettings::default());
        assert!(adam.starts_with("adam (l1 0.00001, l2 0.00001, learning_rate 0.001, epochs 10"));
        assert!(adam.ends_with("device cpu, precision f32)"), "{adam}");
        let fista = ProbeSettings {
            solver: Solver::Fista,
            ..ProbeSettings::default()
        };
        assert_eq!(
            probe_text(&fista),
            "fista (l1 0.00001, l2 0.00001, max_iter 300, tolerance 0.0001, standardize false)"
        );
    }

    #[test]
    fn percent_text_has_no_float_noise() {
        assert_eq!(percent_text(0.01), "1");
        assert_eq!(percent_text(0.035), "3.5");
    }
}
