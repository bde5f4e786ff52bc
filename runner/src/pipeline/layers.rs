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
/// `0..layers`. The last cumulative probe sees every feature: the oracle,
/// returned with the scores (`sieve export` saves it, so that `sieve bench
/// --slim` can time the full model with a real classifier).
pub fn probe_layers(
    bench: &ProbeBench<'_>,
    layers: u32,
    hidden: usize,
) -> Result<(Vec<LayerScores>, Option<TrainedProbe>)> {
    let progress = progress_bar("probes", 2 * layers as usize);
    let mut rows = Vec::with_capacity(layers as usize);
    let mut oracle = None;
    for k in 0..layers as usize {
        let (single, single_probe) = bench.score(&Columns::Range(k * hidden..(k + 1) * hidden))?;
        progress.inc(1);
        let (cumulative, cumulative_probe) = if k == 0 {
            (single, single_probe)
        } else {
            bench.score(&Columns::Range(0..(k + 1) * hidden))?
        };
        oracle = Some(cumulative_probe);
        progress.inc(1);
        info!(
            "layer {k}: alone dev {:.4} test {:.4}; layers 0..={k} dev {:.4} test {:.4}",
            single.dev, single.test, cumulative.dev, cumulative.test
        );
        rows.push(LayerScores {
            k: k as u32,
            single,
            cumulative,
        });
    }
    progress.finish_and_clear();
    Ok((rows, oracle))
}
