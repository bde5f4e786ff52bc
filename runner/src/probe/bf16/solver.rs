//! The paper's Adam recipe with bf16 products: the scores and the weight
//! gradient are computed from bf16 copies of the rows, weights and score
//! gradients, summed in f32; the weights, their Adam moments, the softmax
//! and the loss stay f32 (the usual mixed-precision split). Each probe
//! gets the same init, batches and update rule as the f32 solver.

use std::ops::Range;

use std::time::Instant;

use super::super::error::ProbeError;
use super::super::longest_first::run_longest_first;
use super::super::model::Fitted;
use super::super::objective::Targets;
use super::super::settings::ProbeSettings;
use super::super::solver_adam::{bank_epochs, finish, AdamState, BatchOrder};
use super::free_running::{train_free_running, BankData};
use super::kernel::{matmul_bf16, Backend, Operand, TILE_DEPTH, TILE_ROWS};
use super::layout::{round_row_into_tiles, round_up, BatchLayouts, WIDE_BATCH_COLUMNS};
use super::loss::{loss_grad, round_gradient_into_tiles, RowScratch};
use super::problem::RoundedProblem;

/// One probe of the bank: its f32 Adam state and its bf16 buffers.
pub(super) struct Bf16Probe {
    adam: AdamState,
    pub(super) range: Range<usize>,
    /// Outputs rounded up to whole tiles (45 classes -> 48).
    outputs16: usize,
    /// The weights in bf16, [outputs16, depth], zero outside [k, d].
    weights: Vec<u16>,
    /// The probe's columns rounded up to the products' inner step.
    depth: usize,
    /// Scores transposed, [outputs16, rows16], then their gradient.
    scores_t: Vec<f32>,
    /// Per-row buffers of the softmax.
    rows_scratch: RowScratch,
    /// The score gradient transposed in bf16, [outputs16, rows32].
    dz_t: Vec<u16>,
    /// dL/dW, [outputs16, d rounded up to 16].
    gw: Vec<f32>,
    /// Its steps' seconds (the bank's threads take the longest jobs first).
    pub(super) time: JobTime,
    /// The last step's mean loss.
    loss: f64,
}

impl Bf16Probe {
    fn new(adam: AdamState, range: Range<usize>) -> Self {
        let k = adam.bias.len();
        let depth = round_up(range.len(), TILE_DEPTH);
        let mut probe = Self {
            outputs16: round_up(k, TILE_ROWS),
            weights: vec![0; round_up(k, TILE_ROWS) * depth],
            depth,
            adam,
            range,
            scores_t: Vec::new(),
            rows_scratch: RowScratch::default(),
            dz_t: Vec::new(),
            gw: Vec::new(),
            time: JobTime::default(),
            loss: 0.0,
        };
        probe.round_weights();
        probe
    }

    fn round_weights(&mut self) {
        let d = self.range.len();
        for (j, src) in self.adam.w.chunks_exact(d).enumerate() {
            round_row_into_tiles(src, &mut self.weights, self.depth, j);
        }
    }

    /// One mini-batch step on the laid-out batch; returns its mean loss
    /// (0 unless `want_loss`).
    pub(super) fn step(
        &mut self,
        backend: Backend,
        batch: &BatchLayouts,
        targets: Targets<'_>,
        s: &ProbeSettings,
        want_loss: bool,
    ) -> f64 {
        let loss = self.gradient(backend, batch, targets, want_loss);
        let gw = std::mem::take(&mut self.gw);
        self.adam
            .apply_gradient(&gw, round_up(self.range.len(), TILE_ROWS), s);
        self.gw = gw;
        self.round_weights();
        loss
    }

    /// Scores, loss (0 unless `want_loss`) and gradients of the batch:
    /// dL/dW into `self.gw`, dL/db into the Adam state's `gb`.
    fn gradient(
        &mut self,
        backend: Backend,
        batch: &BatchLayouts,
        targets: Targets<'_>,
        want_loss: bool,
    ) -> f64 {
        let (k, n, n16) = (self.adam.bias.len(), batch.rows, batch.rows16());
        let start = self.range.start;
        // scores^T [outputs16, n16] = W [outputs16, depth] x^T [depth, n16]
        let weights = Operand {
            data: &self.weights,
            rows: self.outputs16,
            cols: self.depth,
        };
        let rows_t = batch.columns_by_pairs(start, self.depth);
        self.scores_t.resize(self.outputs16 * n16, 0.0);
        matmul_bf16(backend, weights, rows_t, &mut self.scores_t, n16);
        let loss = loss_grad(
            &mut self.scores_t,
            (n16, n),
            &self.adam.bias,
            targets,
            &mut self.adam.gb,
            &mut self.rows_scratch,
            want_loss,
        );
        // dW [outputs16, d16] = dZ^T [outputs16, n32] x [n32, d16]
        let n32 = batch.rows32();
        self.dz_t.clear();
        self.dz_t.resize(self.outputs16 * n32, 0);
        round_gradient_into_tiles(&self.scores_t, (n16, n, k), &mut self.dz_t, n32);
        let d16 = round_up(self.range.len(), TILE_ROWS);
        let dz_t = Operand {
            data: &self.dz_t,
            rows: self.outputs16,
            cols: n32,
        };
        let rows = batch.rows_by_pairs(start, d16);
        self.gw.resize(self.outputs16 * d16, 0.0);
        matmul_bf16(backend, dz_t, rows, &mut self.gw, d16);
        loss
    }
}

/// bf16 without AMX is slower than f32 (the products widen their operands
/// first); said once per process so a user who asked for speed knows.
fn warn_once_without_tiles(backend: Backend) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if backend == Backend::Portable {
        WARNED.call_once(|| {
            tracing::warn!(
                "probe precision bf16: this CPU (or SIEVE_NO_AMX=1) gives no AMX tiles, so the \
                 products run as f32 on bf16 values, slower than `precision: f32`"
            )
        });
    }
}

/// Trains one probe per column range of `p.x` with bf16 products over the
/// same mini-batches, as `solver_adam::train_adam_bank` does in f32: each
/// batch is laid out once and every probe steps on its columns (on several
/// threads each probe on its own, see `free_running`). `init` (one range
/// only) replaces torch's init.
pub(crate) fn train_adam_bank_bf16(
    p: &RoundedProblem<'_>,
    ranges: &[Range<usize>],
    s: &ProbeSettings,
    seed: u64,
    init: Option<(&[f32], &[f32])>,
) -> Result<Vec<Fitted>, ProbeError> {
    if let Some(bad) = ranges.iter().find(|r| !r.start.is_multiple_of(TILE_DEPTH)) {
        // The layouts hold columns in steps of 32; `train_probe_bank` gives
        // other ranges their own copy before calling this.
        return Err(ProbeError::InvalidSettings(format!(
            "bf16 probe bank: column range {bad:?} does not start at a multiple of {TILE_DEPTH}"
        )));
    }
    if init.is_some() && ranges.len() != 1 {
        return Err(ProbeError::InvalidSettings(
            "a warm start gives the weights of one probe, not of a bank".into(),
        ));
    }
    let backend = Backend::detect();
    warn_once_without_tiles(backend);
    let probes: Vec<Bf16Probe> = ranges
        .iter()
        .map(|r| {
            let adam = AdamState::new(p.outputs, r.len(), seed, init, 1);
            Bf16Probe::new(adam, r.clone())
        })
        .collect();
    let mut order = BatchOrder::new(p.rows, s.shuffle, seed);
    let started = Instant::now();
    // Several probes on several threads step on their own; one probe, or
    // one thread, steps batch by batch.
    let (trained, layouts) = if ranges.len() > 1 && rayon::current_num_threads() > 1 {
        let data = BankData {
            rounded: &p.rounded,
            cols: p.cols,
            rows: p.rows,
            targets: p.targets,
        };
        train_free_running(probes, &data, s, &mut order, backend)
    } else {
        train_step_by_step(probes, p, s, &mut order, backend)
    };
    log_bank_times(&trained, &layouts, started.elapsed().as_secs_f64());
    trained
        .into_iter()
        .map(|(probe, loss)| finished(probe, s, loss, backend))
        .collect()
}

/// Trains `probes` one batch at a time: every probe takes its step on a
/// batch before any takes the next; returns each probe with its mean loss
/// over the last epoch, and the layouts' seconds.
fn train_step_by_step(
    mut probes: Vec<Bf16Probe>,
    p: &RoundedProblem<'_>,
    s: &ProbeSettings,
    order: &mut BatchOrder,
    backend: Backend,
) -> (Vec<(Bf16Probe, f64)>, JobTime) {
    // Only the columns some probe reads are laid out (a search group reads
    // a prefix of its matrix).
    let width = probes
        .iter()
        .map(|probe| probe.range.end)
        .max()
        .unwrap_or(0);
    let mut layouts = AheadLayouts::new(width, s.batch_size.min(p.rows.max(1)));
    // A wide batch is laid out during the step, on another thread. A
    // narrow probe waits for its layout instead, since waking a thread each
    // step to lay out a narrow batch costs more than it saves
    // (`probe_speed` at 32-403 columns; the 539-column WSJ probe as well).
    let lay_out_ahead = width >= WIDE_BATCH_COLUMNS;
    let rounded = p.rounded.as_slice();
    let mut layout_time = JobTime::default();
    let epoch_losses = bank_epochs(
        p.rows,
        probes.len(),
        s,
        order,
        |order, start, len, last_epoch| {
            let next_start = start + len;
            let next = match lay_out_ahead {
                false => Vec::new(),
                true => order
                    .indices(next_start, s.batch_size.min(p.rows - next_start))
                    .to_vec(),
            };
            let (current, spare) =
                layouts.current(rounded, p.cols, order.indices(start, len), start);
            let targets = order.targets(p.targets, start, len);
            let mut jobs: Vec<StepJob<'_>> = probes.iter_mut().map(StepJob::Probe).collect();
            if !next.is_empty() {
                // The next batch is laid out by whichever thread is free
                // first, beside the probes (not before the step).
                jobs.push(StepJob::LayOut(spare, &next, &mut layout_time));
            }
            run_longest_first(&mut jobs, StepJob::last_seconds, |job| {
                let started = Instant::now();
                match job {
                    StepJob::Probe(probe) => {
                        probe.loss = probe.step(backend, current, targets, s, last_epoch);
                        probe.time.record(started);
                    }
                    StepJob::LayOut(spare, next, time) => {
                        spare.fill(rounded, p.cols, next);
                        time.record(started);
                    }
                }
            });
            let losses = probes.iter().map(|probe| probe.loss).collect();
            layouts.advance((!next.is_empty()).then_some(next_start));
            losses
        },
    );
    (probes.into_iter().zip(epoch_losses).collect(), layout_time)
}

/// A trained probe's weights and note.
fn finished(
    probe: Bf16Probe,
    s: &ProbeSettings,
    loss: f64,
    backend: Backend,
) -> Result<Fitted, ProbeError> {
    let mut fitted = finish(probe.adam.w, probe.adam.bias, s, loss)?;
    fitted
        .note
        .push_str(&format!(" precision=bf16 ({})", backend.name()));
    Ok(fitted)
}

/// The seconds of a job of every step: the last one (the next step's
/// order) and the total (the debug log).
#[derive(Default)]
pub(super) struct JobTime {
    last: f64,
    total: f64,
}

impl JobTime {
    pub(super) fn record(&mut self, started: Instant) {
        self.last = started.elapsed().as_secs_f64();
        self.total += self.last;
    }
}

/// How the bank's time was spent (`SIEVE_LOG=debug`): its wall time next to
/// the seconds of each probe's steps and of the layouts ahead, whose sum
/// over the threads is the ideal.
fn log_bank_times(probes: &[(Bf16Probe, f64)], layouts: &JobTime, wall: f64) {
    let widths: Vec<String> = probes
        .iter()
        .map(|(p, _)| format!("{}:{:.3}", p.range.len(), p.time.total))
        .collect();
    let jobs = probes.iter().map(|(p, _)| p.time.total).sum::<f64>() + layouts.total;
    tracing::debug!(
        "bf16 bank: {wall:.3} s for jobs of {jobs:.3} s (probes by width {}, layouts ahead {:.3})",
        widths.join(" "),
        layouts.total
    );
}

/// One job of a bank's step: a probe's step on the current batch, or the
/// layout of the next batch (with its times).
enum StepJob<'a> {
    Probe(&'a mut Bf16Probe),
    LayOut(&'a mut BatchLayouts, &'a [u32], &'a mut JobTime),
}

impl StepJob<'_> {
    fn last_seconds(&self) -> f64 {
        match self {
            StepJob::Probe(probe) => probe.time.last,
            StepJob::LayOut(_, _, time) => time.last,
        }
    }
}

/// Two batch layouts: the probes read the current batch from one while
/// the next batch of the epoch is laid out in the other.
struct AheadLayouts {
    buffers: [BatchLayouts; 2],
    current: usize,
    /// The first row (in the epoch order) of the batch already laid out in
    /// the spare buffer.
    ahead: Option<usize>,
}

impl AheadLayouts {
    fn new(cols: usize, max_rows: usize) -> Self {
        Self {
            buffers: [
                BatchLayouts::new(cols, max_rows),
                BatchLayouts::new(cols, max_rows),
            ],
            current: 0,
            ahead: None,
        }
    }

    /// The layouts of the batch starting at `start` (laid out now unless
    /// the previous step did it), and the spare buffer.
    fn current(
        &mut self,
        x: &[u16],
        stride: usize,
        batch: &[u32],
        start: usize,
    ) -> (&BatchLayouts, &mut BatchLayouts) {
        if self.ahead == Some(start) {
            self.current = 1 - self.current;
        } else {
            self.buffers[self.current].fill(x, stride, batch);
        }
        let [a, b] = &mut self.buffers;
        match self.current {
            0 => (a, b),
            _ => (b, a),
        }
    }

    /// Records that the spare buffer now holds the batch starting at
    /// `start` (`None`: nothing was laid out ahead).
    fn advance(&mut self, start: Option<usize>) {
        self.ahead = start;
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::gemm::MatRef;
    use super::super::super::solver_adam::{batch_gradient, BatchScratch};
    use super::super::layout::{bf16_to_f32, rounded_matrix};
    use super::*;

    /// Every step reads exactly its own batch, whether it was laid out
    /// ahead (in the spare buffer, by the previous step) or at the step.
    #[test]
    fn layouts_laid_out_ahead_hold_each_steps_batch() {
        let (rows, cols) = (60, 70);
        let x: Vec<u16> = (0..rows * cols)
            .map(|v| (v * 7 % 65_000) as u16 + 1)
            .collect();
        let batches: Vec<Vec<u32>> = vec![
            vec![3, 1, 4, 59],
            vec![15, 9, 2, 6],
            vec![5, 35, 8, 9],
            vec![7, 0, 31, 44],
            vec![12, 13, 14, 58],
        ];
        let mut layouts = AheadLayouts::new(cols, 4);
        for (i, batch) in batches.iter().enumerate() {
            let start = i * 4;
            let (current, spare) = layouts.current(&x, cols, batch, start);
            let mut fresh = BatchLayouts::new(cols, 4);
            fresh.fill(&x, cols, batch);
            assert_eq!(current.rows, batch.len(), "step {i}");
            assert_eq!(current.by_column_pairs, fresh.by_column_pairs, "step {i}");
            assert_eq!(current.by_row_pairs, fresh.by_row_pairs, "step {i}");
            // Lay out ahead on steps 0, 1 and 3 only: both paths run.
            match batches.get(i + 1) {
                Some(next) if i != 2 => {
                    spare.fill(&x, cols, next);
                    layouts.advance(Some(start + 4));
                }
                _ => layouts.advance(None),
            }
        }
    }

    /// One batch's gradient with bf16 products is the f32 gradient of the
    /// same (bf16-valued) rows up to the rounding of W and dZ.
    #[test]
    fn the_bf16_gradient_is_the_f32_gradient_up_to_rounding() {
        let (rows, cols, k) = (70, 75, 5);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 / 506.0 - 1.0) * 2.0)
            .collect();
        let x16 = rounded_matrix(&x);
        let x16 = x16.as_slice();
        let x_rounded: Vec<f32> = x16.iter().map(|&h| bf16_to_f32(h)).collect();
        let labels: Vec<u32> = (0..rows as u32).map(|r| r * 7 % k as u32).collect();
        let batch: Vec<u32> = (0..rows as u32).rev().collect();
        let batch_labels: Vec<u32> = batch.iter().map(|&r| labels[r as usize]).collect();
        let targets = Targets::Classes(&batch_labels);
        // Columns 32..71 of the matrix, as a bank's probe would see them.
        let range = 32..71;
        let mut probe = Bf16Probe::new(AdamState::new(k, range.len(), 3, None, 1), range.clone());
        let mut layouts = BatchLayouts::new(cols, rows);
        layouts.fill(x16, cols, &batch);
        for backend in [Backend::Portable, Backend::detect()] {
            let loss = probe.gradient(backend, &layouts, targets, true);
            // The f32 reference on the gathered rows of the same columns.
            let xb: Vec<f32> = batch
                .iter()
                .flat_map(|&r| &x_rounded[r as usize * cols..][range.clone()])
                .copied()
                .collect();
            let (mut scratch, mut gb) = (BatchScratch::default(), vec![0.0; k]);
            let xb = MatRef::row_major(&xb, rows, range.len());
            let want_loss = batch_gradient(
                xb,
                &probe.adam.w,
                &probe.adam.bias,
                targets,
                &mut scratch,
                &mut gb,
                ::gemm::Parallelism::None,
            );
            assert!(
                (loss - want_loss).abs() < 1e-2 * want_loss,
                "{loss} vs {want_loss}"
            );
            let d16 = round_up(range.len(), TILE_ROWS);
            let got: Vec<f32> = probe
                .gw
                .chunks_exact(d16)
                .take(k)
                .flat_map(|row| &row[..range.len()])
                .copied()
                .collect();
            let diff: f32 = got
                .iter()
                .zip(&scratch.gw)
                .map(|(a, b)| (a - b).powi(2))
                .sum();
            let norm: f32 = scratch.gw.iter().map(|b| b * b).sum();
            assert!(
                (diff / norm).sqrt() < 1e-2,
                "{backend:?}: gradient {}",
                (diff / norm).sqrt()
            );
            let bias_diff: f32 = probe
                .adam
                .gb
                .iter()
                .zip(&gb)
                .map(|(a, b)| (a - b).abs())
                .sum();
            let bias_norm: f32 = gb.iter().map(|b| b.abs()).sum();
            assert!(
                bias_diff < 1e-2 * bias_norm,
                "{backend:?}: bias gradient off by {bias_diff} of {bias_norm}"
            );
        }
    }
}
