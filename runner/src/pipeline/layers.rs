//! Per-layer probes: each hidden state alone and the layers 0..=k together.

use anyhow::Result;
use tracing::info;

use super::extract::progress_bar;
use super::probing::{Columns, ProbeBench, Score};
use crate::probe::TrainedProbe;

/// Scores for hidden state `k`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LayerScores {
    pub k: u32,
    pub single: Score,
    pub cumulative: Score,
}

/// Trains the single-layer and cumulative probes for hidden states
/// `0..layers` (together, see [`ProbeBench::score_many`]). The last
/// cumulative probe sees every feature: the oracle, returned with the
/// scores (`sieve export` saves it, so that `sieve bench --slim` can time
/// the full model with a real classifier).
pub fn probe_layers(
    bench: &ProbeBench<'_>,
    layers: u32,
    hidden: usize,
) -> Result<(Vec<LayerScores>, Option<TrainedProbe>)> {
    let layers = layers as usize;
    let progress = progress_bar("probes", 1);
    // Single layers 0..L, then layers 0..=k for k >= 1 (0..=0 is layer 0).
    let singles = (0..layers).map(|k| k * hidden..(k + 1) * hidden);
    let cumulative = (1..layers).map(|k| 0..(k + 1) * hidden);
    let ranges: Vec<_> = singles.chain(cumulative).collect();
    let all = Columns::Range(0..layers * hidden);
    let mut scored = bench.score_many(&all, &ranges)?.into_iter();
    let singles: Vec<(Score, TrainedProbe)> = scored.by_ref().take(layers).collect();
    let cumulative: Vec<(Score, TrainedProbe)> = scored.collect();
    progress.finish_and_clear();
    let mut rows = Vec::with_capacity(layers);
    for (k, (single, _)) in singles.iter().enumerate() {
        let cumulative = if k == 0 { single } else { &cumulative[k - 1].0 };
        info!(
            "layer {k}: alone dev {:.4} test {:.4}; layers 0..={k} dev {:.4} test {:.4}",
            single.dev, single.test, cumulative.dev, cumulative.test
        );
        rows.push(LayerScores {
            k: k as u32,
            single: *single,
            cumulative: *cumulative,
        });
    }
    let oracle = match cumulative.into_iter().last() {
        Some((_, probe)) => Some(probe),
        None => singles.into_iter().next().map(|(_, probe)| probe),
    };
    Ok((rows, oracle))
}
