//! The run's charts, each as SVG and PNG: probe score per layer, score
//! against the number of kept neurons, and the sizes of the clusters.
//!
//! plotters is built without system font libraries (nothing to install on
//! a fresh machine); text is drawn with a TrueType file found by
//! [`find_font`]. Without one the charts are skipped with a warning: a run
//! never fails for want of a chart.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LayerRow, Report};
use crate::util::atomic::write_atomic;

const SIZE: (u32, u32) = (800, 500);

/// Where a font is looked for, in order, after `$SIEVE_FONT`: the project's
/// fetched font (from the working folder, or from the binary's
/// `target/release` folder), then common system fonts.
fn font_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("SIEVE_FONT") {
        candidates.push(PathBuf::from(path));
    }
    let project_font = Path::new("assets/fonts/DejaVuSans.ttf");
    candidates.push(project_font.to_path_buf());
    if let Ok(exe) = std::env::current_exe() {
        for ancestor in exe.ancestors().skip(1).take(4) {
            candidates.push(ancestor.join(project_font));
        }
    }
    for system in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/Library/Fonts/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ] {
        candidates.push(PathBuf::from(system));
    }
    candidates
}

/// Registers the first usable font once per process; its path, or why
/// there is none.
pub fn find_font() -> Result<PathBuf, String> {
    static FONT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        for path in font_candidates() {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the whole process; one leak per run.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(path);
            }
        }
        Err(
            "no TrueType font found for the charts; run `scripts/fetch-assets.sh font` \
             or set SIEVE_FONT to a .ttf file"
                .to_string(),
        )
    })
    .clone()
}

/// The charts: file stem and what they show.
const CHARTS: [&str; 4] = ["layers", "neurons", "clusters", "compare"];

/// Writes every chart the report has data for into `dir`; returns the
/// files written.
pub fn write_plots(dir: &Path, report: &Report) -> Result<Vec<PathBuf>> {
    find_font().map_err(|e| anyhow!(e))?;
    let mut written = Vec::new();
    for name in CHARTS {
        written.extend(write_chart(dir, name, report)?);
    }
    Ok(written)
}

/// Draws one chart of either backend; false when the report has no data
/// for it (e.g. no clustering stage).
fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
    name: &str,
) -> Result<bool> {
    match name {
        "layers" => layers_chart(area, report),
        "neurons" => top_n_chart(area, report),
        "clusters" => cluster_chart(area, report),
        _ => compare_chart(area, report),
    }
}

/// Writes `name.svg` and `name.png`, each atomically (drawn to a hidden
/// temporary file, then renamed).
fn write_chart(dir: &Path, name: &str, report: &Report) -> Result<Vec<PathBuf>> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        if !draw_chart(&area, report, name)? {
            return Ok(Vec::new());
        }
        area.present().map_err(|e| anyhow!("{name}.svg: {e}"))?;
    }
    let svg_path = dir.join(format!("{name}.svg"));
    write_atomic(&svg_path, svg.as_bytes())?;

    // The bitmap backend picks the encoder from the extension: the
    // temporary name must end in .png too.
    let png_path = dir.join(format!("{name}.png"));
    let temp = dir.join(format!(".{name}.partial.png"));
    {
        let area = BitMapBackend::new(&temp, SIZE).into_drawing_area();
        draw_chart(&area, report, name)?;
        area.present().map_err(|e| anyhow!("{name}.png: {e}"))?;
    }
    std::fs::rename(&temp, &png_path)
        .with_context(|| format!("cannot write {}", png_path.display()))?;
    Ok(vec![svg_path, png_path])
}

fn percent(v: f64) -> f64 {
    v * 100.0
}

fn draw_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Single-layer and cumulative (0..k) dev scores per hidden state, with the
/// oracle and LayerSelector's choice.
fn layers_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
) -> Result<bool> {
    let rows = &report.layers;
    if rows.is_empty() {
        return Ok(false);
    }
    area.fill(&WHITE).map_err(draw_error)?;
    let scores = rows
        .iter()
        .flat_map(|r| [r.single_dev, r.cumulative_dev])
        .flatten()
        .map(percent);
    let (low, high) = bounds(scores);
    let last = rows.len() as f64 - 1.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: probe {} per layer (dev)", report.name, report.metric),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.2..last + 0.2, low..high)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("hidden state k (0 = embeddings)")
        .y_desc(format!("{} (%)", report.metric))
        .x_labels(rows.len())
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .draw()
        .map_err(draw_error)?;
    // Probes that were not trained (early stop, no single layers) have no
    // point.
    let points = |score: fn(&LayerRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| score(r).map(|v| (r.k as f64, percent(v))))
            .collect()
    };
    let single = points(|r| r.single_dev);
    let cumulative = points(|r| r.cumulative_dev);
    if !single.is_empty() {
        chart
            .draw_series(LineSeries::new(single.clone(), BLUE.stroke_width(2)))
            .map_err(draw_error)?
            .label("layer k alone")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(single.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(draw_error)?;
    }
    chart
        .draw_series(LineSeries::new(cumulative.clone(), RED.stroke_width(2)))
        .map_err(draw_error)?
        .label("layers 0..k")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(cumulative.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(draw_error)?;
    let oracle = percent(report.oracle.dev);
    chart
        .draw_series(LineSeries::new(
            vec![(-0.2, oracle), (last + 0.2, oracle)],
            BLACK.mix(0.4),
        ))
        .map_err(draw_error)?
        .label("oracle (all layers)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    if let Some(ls) = &report.layer_selector {
        chart
            .draw_series(std::iter::once(Cross::new(
                (ls.k as f64, percent(ls.dev)),
                9,
                GREEN.stroke_width(3),
            )))
            .map_err(draw_error)?
            .label(format!("LayerSelector: k = {}", ls.k))
            .legend(|(x, y)| Cross::new((x + 10, y), 6, GREEN.stroke_width(3)));
    }
    legend(&mut chart)?;
    Ok(true)
}

/// Dev and test score of each candidate N of the top-N search, with the
/// chosen N and the search's target.
fn top_n_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, report: &Report) -> Result<bool> {
    let Some(selection) = &report.selection else {
        return Ok(false);
    };
    if selection.candidates.is_empty() {
        return Ok(false);
    }
    area.fill(&WHITE).map_err(draw_error)?;
    let target = percent(selection.dev_threshold);
    let scores = selection
        .candidates
        .iter()
        .flat_map(|c| [c.dev, c.test])
        .map(percent)
        .chain([target, percent(report.oracle.dev)]);
    let (low, high) = bounds(scores);
    let max_n = selection.candidates.iter().map(|c| c.n).max().unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: {} against kept neurons ({})",
                report.name, report.metric, selection.selector
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_n * 1.05, low..high)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("neurons kept (N)")
        .y_desc(format!("{} (%)", report.metric))
        .draw()
        .map_err(draw_error)?;
    for (name, color, pick) in [
        (
            "dev",
            BLUE,
            (|c: &crate::pipeline::selection::Candidate| c.dev) as fn(&_) -> f64,
        ),
        ("test", RED, |c| c.test),
    ] {
        let points: Vec<(f64, f64)> = selection
            .candidates
            .iter()
            .map(|c| (c.n as f64, percent(pick(c))))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(draw_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_error)?;
    }
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, target), (max_n * 1.05, target)],
            BLACK.mix(0.4),
        ))
        .map_err(draw_error)?
        .label(format!("target (dev > {target:.2})"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    let chosen = selection.features as f64;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(chosen, low), (chosen, high)],
            GREEN.stroke_width(2),
        )))
        .map_err(draw_error)?
        .label(format!("chosen N = {}", selection.features))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    legend(&mut chart)?;
    Ok(true)
}

/// How many clusters have each size (1 = a neuron nothing else resembles).
fn cluster_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
) -> Result<bool> {
    let Some(clustering) = &report.clustering else {
        return Ok(false);
    };
    let sizes = &clustering.cluster_sizes;
    if sizes.is_empty() {
        return Ok(false);
    }
    area.fill(&WHITE).map_err(draw_error)?;
    let largest = sizes.iter().copied().max().unwrap_or(1);
    let mut counts = vec![0u32; largest as usize + 1];
    for &size in sizes {
        counts[size as usize] += 1;
    }
    let tallest = counts.iter().copied().max().unwrap_or(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: {} clusters of {} neurons",
                report.name,
                sizes.len(),
                sizes.iter().map(|&s| s as u64).sum::<u64>()
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(
            (1u32..largest + 1).into_segmented(),
            0u32..tallest + tallest / 10 + 1,
        )
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("cluster size (neurons)")
        .y_desc("clusters")
        .draw()
        .map_err(draw_error)?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(BLUE.filled())
                .margin(2)
                .data(sizes.iter().map(|&s| (s, 1u32))),
        )
        .map_err(draw_error)?;
    Ok(true)
}

/// Test score against N, one line per compared ranker.
fn compare_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
) -> Result<bool> {
    let curves = &report.comparison;
    if curves.iter().all(|c| c.points.is_empty()) {
        return Ok(false);
    }
    area.fill(&WHITE).map_err(draw_error)?;
    let scores = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| percent(p.test)));
    let (low, high) = bounds(scores);
    let max_n = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.n))
        .max()
        .unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: rankers compared (test {})", report.name, report.metric),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_n * 1.05, low..high)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("neurons kept (N)")
        .y_desc(format!("test {} (%)", report.metric))
        .draw()
        .map_err(draw_error)?;
    for (index, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|p| (p.n as f64, percent(p.test)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(draw_error)?
            .label(format!("{}: {:.2} s", curve.label(), curve.seconds))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_error)?;
    }
    legend(&mut chart)?;
    Ok(true)
}

/// A y range around the values with a little room above and below.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if low > high {
        return (0.0, 100.0);
    }
    let pad = ((high - low) * 0.08).max(0.5);
    ((low - pad).max(0.0), (high + pad).min(100.0))
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(draw_error)
}
