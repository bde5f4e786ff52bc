//! A bf16 probe bank whose probes run through their steps on their own.
//!
//! In the step-by-step bank every probe finishes step t before any starts
//! step t + 1, so each step lasts as long as its worst packing of jobs onto
//! threads: measured on WSJ, the banks ran at 81-84% of their jobs' time
//! spread evenly over the threads. But a probe's step t + 1 needs only its
//! own step t and the layout of batch t + 1. Here the batch layouts sit in
//! a small ring of slots; a slot is laid out as soon as every probe is done
//! with the batch it held, and every thread takes whatever is ready: the
//! next layout, or the step of the probe furthest behind (widest first).
//! Probes drift apart by up to the ring's length in steps, and the threads
//! stay busy until the last step.
//!
//! Each probe still runs its own steps in order on the same batches, so
//! the result is the same bits as the step-by-step bank, whichever thread
//! ran which step.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use super::super::objective::Targets;
use super::super::settings::ProbeSettings;
use super::super::solver_adam::{gather_targets, BatchOrder};
use super::kernel::Backend;
use super::layout::BatchLayouts;
use super::solver::{Bf16Probe, JobTime};
use crate::util::progress::ProbeWork;

/// Batches laid out at once: how far apart the probes may drift, in steps.
const RING: usize = 3;

/// A slot of the ring that holds no batch yet.
const EMPTY: usize = usize::MAX;

/// What a probe bank trains on: the rounded rows and their targets.
pub(super) struct BankData<'a> {
    pub rounded: &'a [u16],
    pub cols: usize,
    pub rows: usize,
    pub targets: Targets<'a>,
}

/// One batch of the ring: its layouts and targets, the step it holds and
/// how many probes have yet to take that step.
struct Slot {
    step: AtomicUsize,
    pending: AtomicUsize,
    batch: RwLock<SlotBatch>,
}

impl Slot {
    fn new(width: usize, batch_size: usize) -> Self {
        Self {
            step: AtomicUsize::new(EMPTY),
            pending: AtomicUsize::new(0),
            batch: RwLock::new(SlotBatch {
                layouts: BatchLayouts::new(width, batch_size),
                labels: Vec::new(),
                values: Vec::new(),
            }),
        }
    }
}

struct SlotBatch {
    layouts: BatchLayouts,
    labels: Vec<u32>,
    values: Vec<f32>,
}

/// Every step of every epoch: which rows each batch holds.
struct Schedule {
    /// Each epoch's row order.
    orders: Vec<Vec<u32>>,
    rows: usize,
    batch_size: usize,
    steps_per_epoch: usize,
}

impl Schedule {
    fn new(rows: usize, s: &ProbeSettings, order: &mut BatchOrder) -> Self {
        let batch_size = s.batch_size.min(rows.max(1));
        let orders = (0..s.epochs)
            .map(|_| {
                order.start_epoch();
                order.indices(0, rows).to_vec()
            })
            .collect();
        Self {
            orders,
            rows,
            batch_size,
            steps_per_epoch: rows.div_ceil(batch_size),
        }
    }

    fn steps(&self) -> usize {
        self.orders.len() * self.steps_per_epoch
    }

    /// The rows of step `step`, and whether it is in the last epoch.
    fn batch(&self, step: usize) -> (&[u32], bool) {
        let epoch = step / self.steps_per_epoch;
        let start = (step % self.steps_per_epoch) * self.batch_size;
        let len = self.batch_size.min(self.rows - start);
        let last = epoch + 1 == self.orders.len();
        (&self.orders[epoch][start..start + len], last)
    }
}

/// A probe and its last epoch's summed loss.
type ProbeAndLoss = (Bf16Probe, f64);

/// A probe of the bank with its progress: the next step it takes (read by
/// every thread choosing what to run) and its last epoch's summed loss.
struct Runner {
    probe: Mutex<ProbeAndLoss>,
    next: AtomicUsize,
    width: usize,
    /// Its place in the bank's list of probes.
    index: usize,
}

/// Trains `probes` over the batches of `order` on the pool's threads (see
/// the module documentation); returns each probe's mean loss over the last
/// epoch and the layouts' seconds.
pub(super) fn train_free_running(
    probes: Vec<Bf16Probe>,
    data: &BankData<'_>,
    s: &ProbeSettings,
    order: &mut BatchOrder,
    backend: Backend,
) -> (Vec<(Bf16Probe, f64)>, JobTime) {
    let schedule = Schedule::new(data.rows, s, order);
    let width = probes.iter().map(|p| p.range.end).max().unwrap_or(0);
    let mut runners: Vec<Runner> = probes
        .into_iter()
        .enumerate()
        .map(|(index, probe)| Runner {
            width: probe.range.len(),
            probe: Mutex::new((probe, 0.0)),
            next: AtomicUsize::new(0),
            index,
        })
        .collect();
    // Widest first: among probes equally far behind, the longest step
    // starts first.
    runners.sort_by_key(|r| std::cmp::Reverse(r.width));
    let ring: Vec<Slot> = (0..RING)
        .map(|_| Slot::new(width, schedule.batch_size))
        .collect();
    let bank = FreeRunningBank {
        runners: &runners,
        ring: &ring,
        schedule: &schedule,
        data,
        settings: s,
        backend,
        next_layout: AtomicUsize::new(0),
        stopped: AtomicBool::new(false),
        layout_time: Mutex::new(JobTime::default()),
        work: ProbeWork::plan((schedule.steps() * runners.len()) as u64),
    };
    let threads = rayon::current_num_threads().max(1);
    rayon::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| bank.work());
        }
        bank.work();
    });
    let layouts = bank
        .layout_time
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    (results(runners, &schedule), layouts)
}

/// Each probe, back in the bank's order, with its mean loss over the last
/// epoch (NaN without epochs, as the step-by-step bank gives).
fn results(runners: Vec<Runner>, schedule: &Schedule) -> Vec<(Bf16Probe, f64)> {
    let mut done: Vec<(usize, Bf16Probe, f64)> = runners
        .into_iter()
        .map(|r| {
            let (probe, total) = r.probe.into_inner().unwrap_or_else(PoisonError::into_inner);
            let loss = match schedule.orders.is_empty() {
                true => f64::NAN,
                false => total / schedule.rows as f64,
            };
            (r.index, probe, loss)
        })
        .collect();
    done.sort_by_key(|(index, _, _)| *index);
    done.into_iter().map(|(_, p, l)| (p, l)).collect()
}

/// The shared state of one free-running bank's threads.
struct FreeRunningBank<'a> {
    runners: &'a [Runner],
    ring: &'a [Slot],
    schedule: &'a Schedule,
    data: &'a BankData<'a>,
    settings: &'a ProbeSettings,
    backend: Backend,
    /// The next step whose batch is to be laid out.
    next_layout: AtomicUsize,
    /// Set when a thread panicked: the others return.
    stopped: AtomicBool,
    layout_time: Mutex<JobTime>,
    /// The progress display's count of probe steps.
    work: ProbeWork,
}

impl FreeRunningBank<'_> {
    /// Runs whatever is ready until every probe has taken every step.
    fn work(&self) {
        // A thread that panics (a bug) stops the others, which would
        // otherwise wait forever for its step; the scope then re-raises it.
        struct StopOthersOnPanic<'s>(&'s AtomicBool);
        impl Drop for StopOthersOnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.store(true, Ordering::Release);
                }
            }
        }
        let _guard = StopOthersOnPanic(&self.stopped);
        let steps = self.schedule.steps();
        let mut idle = 0u32;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            if self.lay_out_next() || self.step_a_probe() {
                idle = 0;
                continue;
            }
            if self
                .runners
                .iter()
                .all(|r| r.next.load(Ordering::Acquire) >= steps)
            {
                return;
            }
            // Another thread holds what comes next; it takes microseconds.
            idle += 1;
            if idle < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Lays out the next batch if its slot is free (every probe is done
    /// with the batch it held); returns whether it did.
    fn lay_out_next(&self) -> bool {
        let step = self.next_layout.load(Ordering::Acquire);
        if step >= self.schedule.steps() {
            return false;
        }
        let slot = &self.ring[step % RING];
        let free = step < RING
            || (slot.step.load(Ordering::Acquire) == step - RING
                && slot.pending.load(Ordering::Acquire) == 0);
        if !free
            || self
                .next_layout
                .compare_exchange(step, step + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        let started = Instant::now();
        let (rows, _) = self.schedule.batch(step);
        {
            let mut batch = slot.batch.write().unwrap_or_else(PoisonError::into_inner);
            let SlotBatch {
                layouts,
                labels,
                values,
            } = &mut *batch;
            layouts.fill(self.data.rounded, self.data.cols, rows);
            gather_targets(rows, self.data.targets, labels, values);
        }
        slot.pending.store(self.runners.len(), Ordering::Release);
        slot.step.store(step, Ordering::Release);
        self.layout_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(started);
        true
    }

    /// Takes the next step of the probe furthest behind whose batch is
    /// laid out and that no other thread is stepping; returns whether it
    /// did.
    fn step_a_probe(&self) -> bool {
        let Some((step, runner, mut guard)) = self.claim_a_step() else {
            return false;
        };
        let (probe, total) = &mut *guard;
        self.take_step(step, probe, total);
        runner.next.store(step + 1, Ordering::Release);
        self.work.done(1);
        self.ring[step % RING]
            .pending
            .fetch_sub(1, Ordering::AcqRel);
        true
    }

    /// The probe to step next, locked, with the step: furthest behind
    /// first among those whose batch is laid out (the runners are widest
    /// first, and the sort keeps that order among equals).
    fn claim_a_step(&self) -> Option<(usize, &Runner, MutexGuard<'_, ProbeAndLoss>)> {
        let steps = self.schedule.steps();
        let ready = |step: usize| {
            step < steps && self.ring[step % RING].step.load(Ordering::Acquire) == step
        };
        let mut candidates: Vec<(usize, &Runner)> = self
            .runners
            .iter()
            .map(|r| (r.next.load(Ordering::Acquire), r))
            .filter(|&(next, _)| ready(next))
            .collect();
        candidates.sort_by_key(|&(next, _)| next);
        candidates.into_iter().find_map(|(step, runner)| {
            let guard = runner.probe.try_lock().ok()?;
            // Another thread may have taken this step between the scan and
            // the lock.
            (runner.next.load(Ordering::Acquire) == step).then_some((step, runner, guard))
        })
    }

    /// Step `step` of `probe` on its laid-out batch, adding its loss to
    /// `total` in the last epoch.
    fn take_step(&self, step: usize, probe: &mut Bf16Probe, total: &mut f64) {
        let (rows, last_epoch) = self.schedule.batch(step);
        let batch = self.ring[step % RING]
            .batch
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let targets = match self.data.targets {
            Targets::Classes(_) => Targets::Classes(&batch.labels),
            Targets::Values(_) => Targets::Values(&batch.values),
        };
        let started = Instant::now();
        let loss = probe.step(
            self.backend,
            &batch.layouts,
            targets,
            self.settings,
            last_epoch,
        );
        probe.time.record(started);
        if last_epoch {
            *total += loss * rows.len() as f64;
        }
    }
}
