//! Probes that two stages of a selection would each train: trained once.
//!
//! After correlation clustering the paper trains the probe on the kept
//! neurons twice over: once to score the clustering (the reference of the
//! top-N rule) and once inside the elastic-net ranker, which asks the host
//! for the same probe (same rows, labels, settings and seed). Training is
//! deterministic, so the second request gets the first one's probe; the
//! two stages still run side by side, and whichever asks second waits for
//! the probe instead of training a copy (a 539-column WSJ probe: ~0.13 s of
//! a core).

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;

use crate::probe::TrainedProbe;

/// Probes on column sets of the train split, all rows, trained with the
/// bench's own settings and seed (what `ProbeBench::train` gives).
#[derive(Default)]
pub struct SharedProbes {
    entries: Mutex<Vec<(Vec<usize>, Slot)>>,
}

/// One column set's probe: `None` until trained (or after a failed try,
/// which the next asker repeats and reports itself).
type Slot = Arc<Mutex<Option<TrainedProbe>>>;

impl SharedProbes {
    /// The probe on `columns`: the one already trained, or `train()`'s,
    /// kept for the next asker. A concurrent asker for the same columns
    /// waits for this one's training.
    pub fn get_or_train(
        &self,
        columns: &[usize],
        train: impl FnOnce() -> Result<TrainedProbe>,
    ) -> Result<TrainedProbe> {
        let slot = self.slot(columns);
        let mut probe = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(trained) = probe.as_ref() {
            return Ok(trained.clone());
        }
        let trained = train()?;
        *probe = Some(trained.clone());
        Ok(trained)
    }

    fn slot(&self, columns: &[usize]) -> Slot {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, slot)) = entries.iter().find(|(c, _)| c == columns) {
            return slot.clone();
        }
        let slot = Slot::default();
        entries.push((columns.to_vec(), slot.clone()));
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn probe(features: usize) -> TrainedProbe {
        TrainedProbe {
            weights: vec![0.5; 2 * features],
            bias: vec![0.0; 2],
            outputs: 2,
            features,
            standardization: None,
            solver_note: String::new(),
        }
    }

    #[test]
    fn concurrent_askers_for_the_same_columns_train_once() {
        let shared = SharedProbes::default();
        let trainings = AtomicUsize::new(0);
        let train = || {
            trainings.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(probe(3))
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| shared.get_or_train(&[1, 4, 7], train));
            let b = s.spawn(|| shared.get_or_train(&[1, 4, 7], train));
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        assert_eq!(trainings.load(Ordering::SeqCst), 1);
        assert_eq!(a, b);
        // Other columns are another probe.
        let c = shared.get_or_train(&[1, 4], || Ok(probe(2))).unwrap();
        assert_eq!(c.features, 2);
        assert_eq!(trainings.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_training_is_tried_again_by_the_next_asker() {
        let shared = SharedProbes::default();
        let failed = shared.get_or_train(&[0], || anyhow::bail!("diverged"));
        assert!(failed.is_err());
        let trained = shared.get_or_train(&[0], || Ok(probe(1))).unwrap();
        assert_eq!(trained.features, 1);
    }
}
