//! Per-layer probes: each hidden state alone and the layers 0..=k together.

use anyhow::{Context, Result};
use tracing::info;

use super::probing::{Columns, ProbeBench, Score};
use super::selection::select_layer;
use crate::probe::{bank_step_cost, TrainedProbe};
use crate::util::progress::Step;

/// Scores for hidden state `k`; a probe the plan skipped has no score.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LayerScores {
    pub k: u32,
    pub single: Option<Score>,
    pub cumulative: Option<Score>,
}

/// The score of the probe on every feature (the last cumulative probe,
/// always trained).
pub fn oracle_score(layers: &[LayerScores]) -> Result<Score> {
    layers
        .last()
        .and_then(|layer| layer.cumulative)
        .context("no layers were probed")
}

/// Which per-layer probes to train.
#[derive(Debug, Clone, Copy)]
pub struct LayerPlan {
    /// Train each hidden state's probe alone (reported, not used by the
    /// selection).
    pub single_layers: bool,
    /// LayerSelector's delta (%) when the cumulative probes may stop at its
    /// choice: the oracle first, then 0..=k for k = 0, 1, ... until one is
    /// strictly above the target, which is the lowest such k, so the choice
    /// is the same as with every probe trained.
    pub stop_at_choice: Option<f64>,
}

impl Default for LayerPlan {
    fn default() -> Self {
        Self {
            single_layers: true,
            stop_at_choice: None,
        }
    }
}

/// Cumulative probes trained together while stopping early: small groups,
/// so little is trained past the choice, but two per core's worth of
/// parallel work.
const CUMULATIVE_GROUP: usize = 2;

/// Trains the per-layer probes for hidden states `0..layers` as `plan`
/// says (together where possible, see [`ProbeBench::score_many`]). The last
/// cumulative probe sees every feature: the oracle, returned with the
/// scores (`sieve export` saves it, so that `sieve bench --slim` can time
/// the full model with a real classifier).
pub fn probe_layers(
    bench: &ProbeBench<'_>,
    layers: u32,
    hidden: usize,
    plan: LayerPlan,
) -> Result<(Vec<LayerScores>, TrainedProbe)> {
    let layers = layers as usize;
    // Counts every probe's batches: the first bank plans most of them at
    // once, so the ETA holds from its first seconds.
    let progress = Step::probe_work("layer probes");
    let all = Columns::Range(0..layers * hidden);
    let single = |k: usize| k * hidden..(k + 1) * hidden;
    let cumulative = |k: usize| cumulative_range(k, hidden);
    let mut rows: Vec<LayerScores> = (0..layers as u32)
        .map(|k| LayerScores {
            k,
            single: None,
            cumulative: None,
        })
        .collect();

    // First bank: the oracle, the single layers and the cumulative probes
    // (when stopping early, only those that fit beside the oracle for
    // free, see `spare_capacity`).
    let oracle_k = layers - 1;
    let mut ranges = vec![cumulative(oracle_k)];
    let singles: Vec<usize> = match plan.single_layers {
        true => (0..layers).collect(),
        false => Vec::new(),
    };
    ranges.extend(singles.iter().map(|&k| single(k)));
    // Layers 0..=0 is layer 0 alone when the single layers are trained.
    let first_cumulative = usize::from(plan.single_layers);
    let cumulative_ks: Vec<usize> = (first_cumulative..oracle_k).collect();
    let first_bank = match plan.stop_at_choice {
        Some(_) => spare_capacity(&ranges, &cumulative_ks, hidden),
        None => cumulative_ks.len(),
    };
    let (now, later) = cumulative_ks.split_at(first_bank);
    ranges.extend(now.iter().map(|&k| cumulative(k)));
    let mut scored = bench.score_many(&all, &ranges)?.into_iter();
    let (oracle, oracle_probe) = scored.next().context("the oracle probe was not trained")?;
    rows[oracle_k].cumulative = Some(oracle);
    for (&k, (score, _)) in singles.iter().zip(scored.by_ref()) {
        rows[k].single = Some(score);
    }
    if plan.single_layers {
        rows[0].cumulative = rows[0].single;
    }
    for (&k, (score, _)) in now.iter().zip(scored) {
        rows[k].cumulative = Some(score);
    }
    if let Some(delta) = plan.stop_at_choice {
        cumulative_until_choice(bench, &all, &mut rows, later, hidden, delta)?;
    }
    progress.finish();
    for row in &rows {
        info!(
            "layer {}: alone {}; layers 0..={} {}",
            row.k,
            describe(row.single),
            row.k,
            describe(row.cumulative)
        );
    }
    Ok((rows, oracle_probe))
}

/// The columns of hidden states 0..=k.
fn cumulative_range(k: usize, hidden: usize) -> std::ops::Range<usize> {
    0..(k + 1) * hidden
}

/// How many of the cumulative probes `ks` (ascending) fit beside the
/// first bank's probes for free: while the bank's step, as its threads
/// share it (see [`bank_step_cost`]), costs no more than its widest probe
/// (the oracle) alone.
fn spare_capacity(bank: &[std::ops::Range<usize>], ks: &[usize], hidden: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let mut widths: Vec<usize> = bank.iter().map(|r| r.len()).collect();
    let alone = bank_step_cost(widths.iter().max().copied(), threads);
    ks.iter()
        .take_while(|&&k| {
            widths.push(cumulative_range(k, hidden).len());
            bank_step_cost(widths.iter().copied(), threads) <= alone
        })
        .count()
}

/// Trains the cumulative probes `ks` (ascending) a group at a time until
/// LayerSelector's choice is among the trained ones.
fn cumulative_until_choice(
    bench: &ProbeBench<'_>,
    all: &Columns,
    rows: &mut [LayerScores],
    ks: &[usize],
    hidden: usize,
    delta: f64,
) -> Result<()> {
    let oracle_k = rows.len() - 1;
    let chosen = |rows: &[LayerScores]| select_layer(&cumulative_dev(rows), delta) < oracle_k;
    for group in ks.chunks(CUMULATIVE_GROUP) {
        if chosen(rows) {
            break;
        }
        let ranges: Vec<_> = group.iter().map(|&k| cumulative_range(k, hidden)).collect();
        for (&k, (score, _)) in group.iter().zip(bench.score_many(all, &ranges)?) {
            rows[k].cumulative = Some(score);
        }
    }
    Ok(())
}

/// The cumulative dev scores, `None` where the probe was not trained.
pub fn cumulative_dev(rows: &[LayerScores]) -> Vec<Option<f64>> {
    rows.iter().map(|r| r.cumulative.map(|s| s.dev)).collect()
}

fn describe(score: Option<Score>) -> String {
    match score {
        Some(s) => format!("dev {:.4} test {:.4}", s.dev, s.test),
        None => "not trained".into(),
    }
}
