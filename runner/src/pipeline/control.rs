//! Control tasks (Hewitt & Liang, 2019): each word type gets a fixed random
//! label drawn from the task's label distribution, and the same probe is
//! trained on those labels. A probe that scores well on the control task
//! memorises word identity rather than reading the property from the
//! representation; selectivity = task score - control score says how much
//! of the accuracy the representation itself explains.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::data::Unit;
use crate::probe::SplitMix64;

use super::probing::{Columns, ProbeBench, Score};

/// Task and control scores of one feature set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlRow {
    pub features: usize,
    pub task: Score,
    pub control: Score,
    /// task - control, on dev and test.
    pub selectivity: Score,
}

/// The control task's results for the oracle and the final selection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlSummary {
    pub oracle: ControlRow,
    pub selection: Option<ControlRow>,
}

/// Control labels for every word of the three splits, in row order. A
/// word type's label depends only on the word and the seed, so it is the
/// same wherever the word occurs, in any split.
pub fn control_labels(
    splits: &[Vec<Unit>; 3],
    train_labels: &[u32],
    num_classes: usize,
    seed: u64,
) -> Result<[Vec<u32>; 3]> {
    if num_classes == 0 || train_labels.is_empty() {
        bail!("control task: the training split has no labels");
    }
    // Cumulative train label counts: control labels follow the task's
    // label distribution, as in Hewitt & Liang.
    let mut cumulative = vec![0u64; num_classes];
    for &label in train_labels {
        if let Some(count) = cumulative.get_mut(label as usize) {
            *count += 1;
        }
    }
    for i in 1..num_classes {
        cumulative[i] += cumulative[i - 1];
    }
    let total = cumulative[num_classes - 1].max(1);
    let label_of = |word: &str| -> u32 {
        let draw = SplitMix64::new(word_hash(word) ^ seed).next_u64() % total;
        cumulative.partition_point(|&c| c <= draw) as u32
    };
    let labelled = |units: &Vec<Unit>| -> Vec<u32> {
        units
            .iter()
            .flat_map(|u| u.words.iter().map(|w| label_of(w)))
            .collect()
    };
    Ok([
        labelled(&splits[0]),
        labelled(&splits[1]),
        labelled(&splits[2]),
    ])
}

/// FNV-1a: a stable hash (std's hasher may change between Rust versions,
/// which would change the control labels).
fn word_hash(word: &str) -> u64 {
    word.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Trains the control probe on `columns` and pairs it with the task score.
pub fn control_row(control: &ProbeBench<'_>, columns: Columns, task: Score) -> Result<ControlRow> {
    let features = columns.len();
    let (score, _) = control.score(&columns)?;
    info!(
        "control task on {features} features: dev {:.4} test {:.4} (selectivity test {:.4})",
        score.dev,
        score.test,
        task.test - score.test
    );
    Ok(ControlRow {
        features,
        task,
        control: score,
        selectivity: Score {
            dev: task.dev - score.dev,
            test: task.test - score.test,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(words: &[&str]) -> Unit {
        Unit {
            words: words.iter().map(|w| w.to_string()).collect(),
            text: String::new(),
            pair: None,
            labels: Vec::new(),
            line: 1,
        }
    }

    #[test]
    fn a_word_type_keeps_one_control_label_across_splits() {
        let splits = [
            vec![unit(&["the", "dog", "the"]), unit(&["cat"])],
            vec![unit(&["dog", "the"])],
            vec![unit(&["cat", "dog"])],
        ];
        let train = [0, 1, 2, 0, 1, 2, 1];
        let [train_c, dev_c, test_c] = control_labels(&splits, &train, 3, 7).unwrap();
        assert_eq!(train_c.len(), 4);
        assert_eq!(train_c[0], train_c[2], "'the' twice in train");
        assert_eq!(dev_c, vec![train_c[1], train_c[0]], "dev words as in train");
        assert_eq!(test_c, vec![train_c[3], train_c[1]]);
        assert!(train_c.iter().all(|&l| l < 3));
    }

    #[test]
    fn control_labels_follow_the_label_distribution_and_the_seed() {
        let words: Vec<String> = (0..4000).map(|i| format!("w{i}")).collect();
        let refs: Vec<&str> = words.iter().map(|w| w.as_str()).collect();
        let splits = [vec![unit(&refs)], Vec::new(), Vec::new()];
        // 75% class 0, 25% class 1.
        let train = [0, 0, 0, 1];
        let [labels, _, _] = control_labels(&splits, &train, 2, 1).unwrap();
        let share = labels.iter().filter(|&&l| l == 0).count() as f64 / labels.len() as f64;
        assert!((share - 0.75).abs() < 0.03, "class 0 share {share}");
        let [other, _, _] = control_labels(&splits, &train, 2, 2).unwrap();
        assert_ne!(labels, other, "another seed, another control task");
    }
}
