//! Progress of the long steps (extraction, probes, selectors, the top-N
//! search), on stderr only: stdout carries the report and predictions.
//!
//! On a terminal each step is an indicatif bar (position, length, rate,
//! ETA). Anywhere else (pipes, files, Slurm logs) a step writes a plain log
//! line every [`interval`] (`SIEVE_PROGRESS_INTERVAL_MS`, default 15 s)
//! with done/total, rate and ETA, and a final line when it ends.
//!
//! The hot loops never touch a bar, a lock or the clock: they add to
//! atomics ([`Step::inc`], [`ProbeWork::done`]), at most once per batch,
//! and one thread per step reads them and draws or logs. So progress
//! costs nothing measurable and cannot change a result.
//!
//! The probe solvers do not know which step they run in: each training
//! run adds the batch steps it plans and takes to process-wide counters
//! ([`ProbeWork`]), which a step made with [`Step::probe_work`] shows, and
//! other steps mention in their message.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Environment variable: milliseconds between two log lines of a step when
/// stderr is not a terminal.
pub const INTERVAL_ENV: &str = "SIEVE_PROGRESS_INTERVAL_MS";

/// Log lines' interval when [`INTERVAL_ENV`] is not set: well inside the
/// 30 s a batch-job log may stay silent.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// How often a terminal bar copies the counters.
const BAR_REFRESH: Duration = Duration::from_millis(100);

/// Batch steps planned and taken by every probe trained in this process;
/// see [`ProbeWork`].
static PROBE_PLANNED: AtomicU64 = AtomicU64::new(0);
static PROBE_DONE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Batch steps a [`Reservation`] on this thread planned ahead for the
    /// runs it is about to start here, not yet claimed by them.
    static RESERVED: Cell<u64> = const { Cell::new(0) };
}

/// One training run's share of the probe counters: the batch steps (one
/// probe's step on one mini-batch) it plans, added when it starts, and
/// those it takes. Dropping it counts whatever it planned and did not take
/// (a solver that converged early, an error) as done, so the counters
/// agree again when every run has ended.
pub struct ProbeWork {
    planned: u64,
    done: AtomicU64,
}

impl ProbeWork {
    /// Plans `steps` batch steps (those a [`Reservation`] on this thread
    /// planned already are not planned twice).
    pub fn plan(steps: u64) -> Self {
        let covered = RESERVED.with(|reserved| {
            let covered = reserved.get().min(steps);
            reserved.set(reserved.get() - covered);
            covered
        });
        PROBE_PLANNED.fetch_add(steps - covered, Ordering::Relaxed);
        Self {
            planned: steps,
            done: AtomicU64::new(0),
        }
    }

    /// `steps` more batch steps taken.
    #[inline]
    pub fn done(&self, steps: u64) {
        self.done.fetch_add(steps, Ordering::Relaxed);
        PROBE_DONE.fetch_add(steps, Ordering::Relaxed);
    }
}

impl Drop for ProbeWork {
    fn drop(&mut self) {
        let left = self
            .planned
            .saturating_sub(self.done.load(Ordering::Relaxed));
        PROBE_DONE.fetch_add(left, Ordering::Relaxed);
    }
}

/// Probes about to be trained one after another on this thread, planned
/// together before the first starts, so the ETA covers them all and not
/// only the probe in training. Each [`ProbeWork::plan`] on this thread
/// draws from it; what is left when it is dropped (a run that failed)
/// counts as done.
pub struct Reservation {
    /// The reservation this one replaced (they nest).
    outer: u64,
}

impl Reservation {
    /// Plans `steps` batch steps for the runs to come on this thread.
    pub fn new(steps: u64) -> Self {
        PROBE_PLANNED.fetch_add(steps, Ordering::Relaxed);
        Self {
            outer: RESERVED.with(|reserved| reserved.replace(steps)),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let left = RESERVED.with(|reserved| reserved.replace(self.outer));
        PROBE_DONE.fetch_add(left, Ordering::Relaxed);
    }
}

/// The probe counters now: (done, planned).
fn probe_counters() -> (u64, u64) {
    (
        PROBE_DONE.load(Ordering::Relaxed),
        PROBE_PLANNED.load(Ordering::Relaxed),
    )
}

/// Something a long loop reports its progress to.
pub trait Advance {
    /// `n` more units done.
    fn advance(&self, n: u64);
}

impl Advance for ProgressBar {
    fn advance(&self, n: u64) {
        self.inc(n);
    }
}

impl Advance for Step {
    fn advance(&self, n: u64) {
        self.inc(n);
    }
}

/// What a step counts.
enum Counter {
    /// Units it is told of ([`Step::inc`]) out of a length.
    Own { pos: AtomicU64, len: AtomicU64 },
    /// Probe batch steps since the step started.
    Probes,
    /// Nothing: the work happens out of sight (a plugin call).
    Heartbeat,
}

/// The state a step's reporting thread reads.
struct Shared {
    name: String,
    unit: &'static str,
    counter: Counter,
    started: Instant,
    /// The probe counters when the step started.
    probes_at_start: (u64, u64),
    message: Mutex<String>,
}

/// A step's position now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Snapshot {
    pos: u64,
    /// `None` for a heartbeat.
    len: Option<u64>,
    /// Probe batch steps (done, planned) since the step started.
    probes: (u64, u64),
    elapsed: Duration,
}

impl Shared {
    fn snapshot(&self) -> Snapshot {
        let (done, planned) = probe_counters();
        let (done0, planned0) = self.probes_at_start;
        let probes = (done.saturating_sub(done0), planned.saturating_sub(planned0));
        let (pos, len) = match &self.counter {
            Counter::Own { pos, len } => (
                pos.load(Ordering::Relaxed),
                Some(len.load(Ordering::Relaxed)),
            ),
            Counter::Probes => (probes.0, Some(probes.1)),
            Counter::Heartbeat => (0, None),
        };
        Snapshot {
            pos: len.map_or(pos, |len| pos.min(len)),
            len,
            probes,
            elapsed: self.started.elapsed(),
        }
    }

    /// The step's message, with the probe batch steps when it is not a
    /// probe step and probes were trained during it.
    fn message(&self, snapshot: &Snapshot) -> String {
        let message = self
            .message
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (done, planned) = snapshot.probes;
        if matches!(self.counter, Counter::Probes) || planned == 0 {
            return message;
        }
        let probes = format!("probes {done}/{planned} batches");
        match message.is_empty() {
            true => probes,
            false => format!("{message}, {probes}"),
        }
    }

    /// The periodic log line, its rate and ETA at `pace`.
    fn progress_line(&self, pace: &mut Pace) -> String {
        let s = self.snapshot();
        let message = self.message(&s);
        let tail = match message.is_empty() {
            true => String::new(),
            false => format!("; {message}"),
        };
        let Some(len) = s.len else {
            return format!(
                "{}: running, {} elapsed{tail}",
                self.name,
                duration(s.elapsed)
            );
        };
        if len == 0 {
            // Nothing planned yet (a probe bank gathering its columns).
            return format!(
                "{}: starting, {} elapsed{tail}",
                self.name,
                duration(s.elapsed)
            );
        }
        let rate = pace.rate(&s);
        let eta = match rate > 0.0 {
            false => "unknown".to_string(),
            true => duration(Duration::from_secs_f64(
                (len.saturating_sub(s.pos)) as f64 / rate,
            )),
        };
        format!(
            "{}: {}/{} {} ({:.0}%), {} {}/s, {} elapsed, ETA {eta}{tail}",
            self.name,
            s.pos,
            len,
            self.unit,
            100.0 * s.pos as f64 / len.max(1) as f64,
            count(rate),
            self.unit,
            duration(s.elapsed),
        )
    }

    /// The line that ends the step.
    fn final_line(&self) -> String {
        let s = self.snapshot();
        let elapsed = duration(s.elapsed);
        match s.len {
            None => format!("{}: done in {elapsed}", self.name),
            Some(_) => format!(
                "{}: done, {} {} in {elapsed} ({} {}/s)",
                self.name,
                s.pos,
                self.unit,
                count(s.pos as f64 / s.elapsed.as_secs_f64().max(1e-9)),
                self.unit
            ),
        }
    }
}

/// The rate behind a step's ETA: from the first time something was seen
/// done, so the time before it (a model loading, a matrix gathered) does
/// not stretch the first estimates.
#[derive(Default)]
struct Pace {
    /// Elapsed time and position when something was first seen done.
    first: Option<(Duration, u64)>,
}

impl Pace {
    /// Units per second at `s` (0 before anything is done).
    fn rate(&mut self, s: &Snapshot) -> f64 {
        if s.pos == 0 {
            return 0.0;
        }
        let (t0, p0) = *self.first.get_or_insert((s.elapsed, s.pos));
        let since = s.elapsed.saturating_sub(t0).as_secs_f64();
        match s.pos > p0 && since > 0.0 {
            true => (s.pos - p0) as f64 / since,
            false => s.pos as f64 / s.elapsed.as_secs_f64().max(1e-9),
        }
    }
}

/// How a step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// A log line every interval.
    Lines(Duration),
}

impl Mode {
    fn detect() -> Self {
        match std::io::stderr().is_terminal() {
            true => Mode::Bar,
            false => Mode::Lines(interval()),
        }
    }
}

/// The interval between log lines: [`INTERVAL_ENV`] in milliseconds, or
/// [`DEFAULT_INTERVAL`] when unset or not a positive number.
pub fn interval() -> Duration {
    parse_interval(std::env::var(INTERVAL_ENV).ok().as_deref())
}

fn parse_interval(ms: Option<&str>) -> Duration {
    ms.and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(DEFAULT_INTERVAL, Duration::from_millis)
}

/// Every bar of the process, so that log lines can be written between
/// their redraws ([`log_writer`]).
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// stderr for the log: each line is written with the bars taken off the
/// screen and redrawn after it, so neither garbles the other.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The log's stderr writer (a `MakeWriter` for tracing-subscriber).
pub fn log_writer() -> LogWriter {
    LogWriter
}

/// Where a step's log lines go: the log (tests collect them instead).
type Emit = Arc<dyn Fn(&str) + Send + Sync>;

fn to_log() -> Emit {
    Arc::new(|line: &str| tracing::info!("{line}"))
}

/// A long step being reported. Ends with [`Step::finish`] (a final log
/// line) or when dropped (an error: no final line).
pub struct Step {
    shared: Arc<Shared>,
    emit: Emit,
    /// Stops the reporting thread (by being dropped) and joins it.
    reporter: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Step {
    /// A step of `len` units (`unit`: "sentences", "candidates").
    pub fn counted(name: impl Into<String>, len: u64, unit: &'static str) -> Self {
        let counter = Counter::Own {
            pos: AtomicU64::new(0),
            len: AtomicU64::new(len),
        };
        Self::start(name.into(), unit, counter, Mode::detect(), to_log())
    }

    /// A step that shows the probe batch steps planned and taken while it
    /// runs (see [`ProbeWork`]).
    pub fn probe_work(name: impl Into<String>) -> Self {
        Self::start(
            name.into(),
            "batches",
            Counter::Probes,
            Mode::detect(),
            to_log(),
        )
    }

    /// A step whose work cannot be counted (a plugin call): its elapsed
    /// time, and the probe batches it trains, if any.
    pub fn heartbeat(name: impl Into<String>) -> Self {
        Self::start(
            name.into(),
            "",
            Counter::Heartbeat,
            Mode::detect(),
            to_log(),
        )
    }

    fn start(name: String, unit: &'static str, counter: Counter, mode: Mode, emit: Emit) -> Self {
        let shared = Arc::new(Shared {
            name,
            unit,
            counter,
            started: Instant::now(),
            probes_at_start: probe_counters(),
            message: Mutex::new(String::new()),
        });
        let (stop, stopped) = channel::<()>();
        let reporting = Arc::clone(&shared);
        let emitting = Arc::clone(&emit);
        let thread =
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || match mode {
                    Mode::Bar => draw_bar(&reporting, |wait| stopped.recv_timeout(wait)),
                    Mode::Lines(every) => {
                        let wait = |wait| stopped.recv_timeout(wait);
                        log_lines(&reporting, every, wait, &*emitting)
                    }
                });
        Self {
            shared,
            emit,
            // Without a thread the step still counts; it only stays quiet.
            reporter: thread.ok().map(|thread| (stop, thread)),
        }
    }

    /// `n` more units done (atomic; fine in a hot loop, once per batch).
    #[inline]
    pub fn inc(&self, n: u64) {
        if let Counter::Own { pos, .. } = &self.shared.counter {
            pos.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Changes the number of units to do.
    pub fn set_len(&self, len: u64) {
        if let Counter::Own { len: l, .. } = &self.shared.counter {
            l.store(len, Ordering::Relaxed);
        }
    }

    /// What the step is doing now (e.g. the split), shown beside the count.
    pub fn set_message(&self, message: impl Into<String>) {
        *self
            .shared
            .message
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = message.into();
    }

    /// Ends the step with a final log line (how much, how long, how fast).
    pub fn finish(mut self) {
        self.stop();
        (self.emit)(&self.shared.final_line());
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.reporter.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a wait for the step's end (`recv_timeout` on its channel)
/// ended because the step did: a message or a closed channel, not a
/// timeout.
fn ended(result: Result<(), RecvTimeoutError>) -> bool {
    !matches!(result, Err(RecvTimeoutError::Timeout))
}

/// Not a terminal: a log line every `every` until the step ends.
fn log_lines(
    shared: &Shared,
    every: Duration,
    mut wait: impl FnMut(Duration) -> Result<(), RecvTimeoutError>,
    emit: &(dyn Fn(&str) + Send + Sync),
) {
    let mut pace = Pace::default();
    while !ended(wait(every)) {
        emit(&shared.progress_line(&mut pace));
    }
}

/// A terminal: a bar (or a spinner for a heartbeat), refreshed from the
/// counters until the step ends, then cleared (the final log line says the
/// rest).
fn draw_bar(shared: &Shared, mut wait: impl FnMut(Duration) -> Result<(), RecvTimeoutError>) {
    let bar = bars().add(ProgressBar::new(0));
    // A spinner until there is a length to fill (a heartbeat never has one).
    bar.set_style(bar_style(shared.unit, false));
    bar.set_prefix(shared.name.clone());
    let mut counting = false;
    loop {
        let now = shared.snapshot();
        if let Some(len) = now.len.filter(|&len| len > 0) {
            if !counting {
                bar.set_style(bar_style(shared.unit, true));
                counting = true;
            }
            bar.set_length(len);
            bar.set_position(now.pos);
        }
        bar.set_message(shared.message(&now));
        bar.tick();
        if ended(wait(BAR_REFRESH)) {
            break;
        }
    }
    bar.finish_and_clear();
    bars().remove(&bar);
}

fn bar_style(unit: &str, counted: bool) -> ProgressStyle {
    let template = match counted {
        true => format!(
            "{{prefix:>14}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} \
             ({{per_sec:1}}, ETA {{eta}}) {{msg}}"
        ),
        false => "{prefix:>14} {spinner} {elapsed} {msg}".to_string(),
    };
    ProgressStyle::with_template(&template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A duration for people: "4.2 s", "38 s", "7m30s", "2h05m".
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    let whole = d.as_secs();
    match whole {
        _ if s < 10.0 => format!("{s:.1} s"),
        0..60 => format!("{whole} s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
    }
}

/// A rate for people: three significant digits at most.
fn count(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-terminal step whose lines are collected in `lines`.
    fn collected(
        name: &str,
        counter: Counter,
        every: Duration,
        lines: &Arc<Mutex<Vec<String>>>,
    ) -> Step {
        let sink = Arc::clone(lines);
        let emit: Emit = Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string()));
        Step::start(name.into(), "sentences", counter, Mode::Lines(every), emit)
    }

    fn own(len: u64) -> Counter {
        Counter::Own {
            pos: AtomicU64::new(0),
            len: AtomicU64::new(len),
        }
    }

    #[test]
    fn without_a_terminal_a_step_logs_rate_and_eta_at_the_interval() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let step = collected("extraction", own(1000), Duration::from_millis(40), &lines);
        step.set_message("train");
        for _ in 0..10 {
            step.inc(25);
            std::thread::sleep(Duration::from_millis(30));
        }
        step.finish();
        let lines = lines.lock().unwrap().clone();
        let (done, progress) = lines.split_last().expect("lines");
        // 300 ms of work at one line per 40 ms: several lines, not one.
        assert!(progress.len() >= 3, "{lines:#?}");
        for line in progress {
            assert!(
                line.starts_with("extraction: ")
                    && line.contains("/1000 sentences (")
                    && line.contains("sentences/s")
                    && line.contains("elapsed, ETA ")
                    && line.ends_with("; train"),
                "{line}"
            );
        }
        // Once something is done, the ETA is a duration.
        let last = progress.last().expect("a progress line");
        assert!(!last.contains("ETA unknown"), "{last}");
        assert!(
            done.starts_with("extraction: done, 250 sentences in"),
            "{done}"
        );
    }

    #[test]
    fn a_heartbeat_says_how_long_its_call_has_run() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let beat = collected(
            "selector",
            Counter::Heartbeat,
            Duration::from_millis(20),
            &lines,
        );
        std::thread::sleep(Duration::from_millis(90));
        beat.finish();
        let lines = lines.lock().unwrap().clone();
        let (done, beats) = lines.split_last().expect("lines");
        assert!(!beats.is_empty(), "{lines:#?}");
        assert!(beats
            .iter()
            .all(|l| l.starts_with("selector: running, ") && l.contains(" elapsed")));
        assert!(done.starts_with("selector: done in "), "{done}");
    }

    #[test]
    fn a_step_dropped_on_an_error_stops_without_a_final_line() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let step = collected("probes", own(10), Duration::from_secs(60), &lines);
        drop(step);
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn the_eta_ignores_the_time_before_the_first_unit() {
        let at = |seconds: u64, pos: u64| Snapshot {
            pos,
            len: Some(100),
            probes: (0, 0),
            elapsed: Duration::from_secs(seconds),
        };
        let mut pace = Pace::default();
        assert_eq!(pace.rate(&at(5, 0)), 0.0);
        // 10 s of setup, then 10 units: the average so far is all we know.
        assert_eq!(pace.rate(&at(11, 11)), 1.0);
        // 10 units a second since then, not 51 / 15.
        assert_eq!(pace.rate(&at(15, 51)), 10.0);
    }

    #[test]
    fn probe_work_counts_what_was_planned_once_its_runs_end() {
        let (done0, planned0) = probe_counters();
        {
            let work = ProbeWork::plan(40);
            work.done(10);
            // An early stop: the rest counts as done when it is dropped.
        }
        let (done, planned) = probe_counters();
        // Other tests may train probes meanwhile: at least ours moved.
        assert!(planned - planned0 >= 40 && done - done0 >= 40);
    }

    #[test]
    fn a_reservation_plans_its_runs_once() {
        let local = || {
            // Counted on a thread of its own, where no other test's runs
            // draw from the reservation; the global counters are shared,
            // so only this thread's share is checked.
            let reservation = Reservation::new(30);
            let first = ProbeWork::plan(10);
            let second = ProbeWork::plan(10);
            let left = RESERVED.with(Cell::get);
            let planned = (first.planned, second.planned);
            drop((first, second));
            // A run beyond the reservation plans for itself.
            let extra = RESERVED.with(Cell::get);
            drop(reservation);
            (left, planned, extra, RESERVED.with(Cell::get))
        };
        let (left, planned, extra, after) = std::thread::spawn(local).join().unwrap();
        assert_eq!(left, 10, "two runs of 10 drew from the 30 reserved");
        assert_eq!(planned, (10, 10));
        assert_eq!(extra, 10);
        assert_eq!(after, 0, "the reservation ends with its scope");
    }

    #[test]
    fn durations_rates_and_intervals_read_well() {
        assert_eq!(duration(Duration::from_millis(4200)), "4.2 s");
        assert_eq!(duration(Duration::from_secs(38)), "38 s");
        assert_eq!(duration(Duration::from_secs(450)), "7m30s");
        assert_eq!(duration(Duration::from_secs(7500)), "2h05m");
        assert_eq!(count(1234.5), "1234");
        assert_eq!(count(12.34), "12.3");
        assert_eq!(count(0.5), "0.50");
        assert_eq!(parse_interval(Some("50")), Duration::from_millis(50));
        assert_eq!(parse_interval(Some("0")), DEFAULT_INTERVAL);
        assert_eq!(parse_interval(Some("soon")), DEFAULT_INTERVAL);
        assert_eq!(parse_interval(None), DEFAULT_INTERVAL);
    }
}
