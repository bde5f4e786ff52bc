//! One step's jobs of a probe bank spread over the pool's threads, longest
//! first.
//!
//! A bank's step is a handful of jobs of very different lengths (the probes,
//! narrow and wide, and the next batch's layout), all finished before the
//! next step starts. Rayon's halving of a slice decides up front which
//! thread gets which half, so a step could end with one thread holding the
//! two longest jobs while the other waits (the WSJ top-N wave of 241..537
//! columns ran ~30% over its ideal). Here every thread takes the longest job
//! not yet started, as soon as it is free (longest-processing-time list
//! scheduling), from the jobs' lengths at the previous step.
//!
//! Which thread runs a job never changes what the job computes, so results
//! are the same bits however the jobs were spread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `run` once on every job, on up to `rayon::current_num_threads()`
/// threads, each thread taking the longest remaining job (by `length`, in
/// any unit) as soon as it is free.
pub(crate) fn run_longest_first<J: Send>(
    jobs: &mut [J],
    length: impl Fn(&J) -> f64,
    run: impl Fn(&mut J) + Sync,
) {
    let threads = rayon::current_num_threads().min(jobs.len());
    if threads <= 1 {
        jobs.iter_mut().for_each(run);
        return;
    }
    let by_length = longest_first(jobs, length);
    // The counter hands out each index once, so no lock is ever contended:
    // the locks only make the hand-over of `&mut` jobs to threads safe.
    let queue: Vec<Mutex<&mut J>> = by_length.into_iter().map(Mutex::new).collect();
    let next = AtomicUsize::new(0);
    let worker = || {
        while let Some(job) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
            let mut job = job.lock().unwrap_or_else(|e| e.into_inner());
            run(&mut job);
        }
    };
    rayon::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| worker());
        }
        worker();
    });
}

/// The jobs by decreasing length (stable: equal lengths keep their order).
fn longest_first<J>(jobs: &mut [J], length: impl Fn(&J) -> f64) -> Vec<&mut J> {
    let mut by_length: Vec<&mut J> = jobs.iter_mut().collect();
    by_length.sort_by(|a, b| length(b).total_cmp(&length(a)));
    by_length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_exactly_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for n in [0, 1, 2, 7, 40] {
            let mut jobs: Vec<(f64, u32)> = (0..n).map(|i| ((i * 37 % 11) as f64, 0)).collect();
            pool.install(|| run_longest_first(&mut jobs, |j| j.0, |j| j.1 += 1));
            assert!(jobs.iter().all(|j| j.1 == 1), "{n} jobs: {jobs:?}");
        }
    }

    #[test]
    fn jobs_are_handed_out_longest_first() {
        let mut jobs = vec![(1.0, 'a'), (5.0, 'b'), (3.0, 'c'), (5.0, 'd')];
        let order: Vec<char> = longest_first(&mut jobs, |j| j.0)
            .iter()
            .map(|j| j.1)
            .collect();
        assert_eq!(order, vec!['b', 'd', 'c', 'a']);
    }
}
