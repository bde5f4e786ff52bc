//! Times correlation, linkage and flat cut on a random matrix.
//!
//! ```text
//! cargo run --release -p sieve-selector-correlation --example bench_clustering -- 20000 2688
//! ```
//! Arguments: rows, columns (defaults 20000 and 2688), threshold (0.3).

use std::time::Instant;

use sieve_core::MatrixView;
use sieve_selector_correlation::{
    correlation::column_stats, correlation_distances, flat_clusters, linkage, Condensed, Linkage,
};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| -> Result<String, String> {
        Ok(args.get(i).cloned().unwrap_or_else(|| default.to_string()))
    };
    let rows: usize = arg(0, "20000")?.parse().map_err(|e| format!("rows: {e}"))?;
    let cols: usize = arg(1, "2688")?
        .parse()
        .map_err(|e| format!("columns: {e}"))?;
    let t: f64 = arg(2, "0.3")?
        .parse()
        .map_err(|e| format!("threshold: {e}"))?;

    let data = random_matrix(rows, cols);
    let x = MatrixView::new(&data, rows, cols).ok_or("shape")?;
    println!("{rows} x {cols}, {} threads", rayon::current_num_threads());

    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let stats = column_stats(&x);
    let t_stats = start.elapsed();
    drop(stats);
    let start = Instant::now();
    let mut d = correlation_distances(&x).distances;
    let t_corr = start.elapsed();
    let max_error = max_error_against_f64(&data, rows, cols, &d);
    let start = Instant::now();
    let merges = linkage(&mut d, Linkage::Average);
    let t_link = start.elapsed();
    let start = Instant::now();
    let labels = flat_clusters(&merges, cols, t);
    let t_cut = start.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let clusters = labels.iter().max().map_or(0, |&m| m + 1);
    println!(
        "correlation {:.3} s (column stats alone {:.3} s), linkage {:.3} s, cut {:.4} s, \
         total {:.3} s -> {clusters} clusters",
        t_corr.as_secs_f64(),
        t_stats.as_secs_f64(),
        t_link.as_secs_f64(),
        t_cut.as_secs_f64(),
        (t_corr + t_link + t_cut).as_secs_f64()
    );
    println!("largest |error| of 1-|r| against f64 on 200 pairs: {max_error:.2e}");
    println!("process CPU time {cpu:.2} s (about 2x wall when both cores were free)");
    Ok(())
}

/// Largest difference between the computed distance and an f64 two-pass
/// Pearson on a spread of column pairs.
fn max_error_against_f64(data: &[f32], rows: usize, cols: usize, d: &Condensed) -> f64 {
    let column =
        |c: usize| -> Vec<f64> { (0..rows).map(|r| f64::from(data[r * cols + c])).collect() };
    let mut worst = 0.0f64;
    for k in 0..200usize.min(cols * cols.saturating_sub(1) / 2) {
        let (i, j) = ((k * 7919) % cols, (k * 104_729 + 1) % cols);
        if i == j {
            continue;
        }
        let (a, b) = (column(i), column(j));
        let (ma, mb) = (
            a.iter().sum::<f64>() / rows as f64,
            b.iter().sum::<f64>() / rows as f64,
        );
        let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
        let want = 1.0 - (cov / (va * vb).sqrt()).abs();
        worst = worst.max((d.get(i, j) - want).abs());
    }
    worst
}

/// User plus system CPU seconds of this process (Linux; 0 elsewhere), to
/// tell a slow run from one that shared the cores with other work.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Uniform noise plus 64 shared factors with loadings 0..3, so columns
/// correlate at many levels (pure noise would make every cluster a
/// singleton and flatter the linkage).
fn random_matrix(rows: usize, cols: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let factors = 64;
    let mut data = vec![0.0f32; rows * cols];
    let mut row_factors = vec![0.0f32; factors];
    for r in 0..rows {
        row_factors.iter_mut().for_each(|f| *f = next());
        for c in 0..cols {
            let loading = (c % 7) as f32 * 0.5;
            data[r * cols + c] = loading * row_factors[c % factors] + next();
        }
    }
    data
}
