//! How the selection stages appear in `report.json`.
//!
//! The pipeline keeps the spec's units (`delta` in percent, as the paper
//! and the spec write it) and `results.json` stores them that way. The
//! report is for other programs, so it follows one convention: every
//! score, share and tolerance is a fraction (accuracy 0.93, a 1% delta
//! 0.01, 93% of the features removed 0.93), and each field says in its
//! name what it is. `docs/report.schema.json` describes every field.

use serde::Serialize;

use crate::pipeline::selection::{Candidate, FilterResult, FinalSelection, LayerChoice};

/// LayerSelector's choice.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSelectorSummary {
    /// The last hidden state kept (layers 0..=k).
    pub k: u32,
    pub features: usize,
    /// Share of the model's features removed, in [0, 1].
    pub removed_fraction: f64,
    pub dev: f64,
    pub test: f64,
    /// The spec's `delta` as a fraction: the largest relative drop from
    /// the oracle's dev score the rule allowed.
    pub max_relative_drop: f64,
}

impl LayerSelectorSummary {
    /// `total`: the model's features (every hidden state).
    pub fn new(choice: &LayerChoice, total: usize) -> Self {
        Self {
            k: choice.k,
            features: choice.features,
            removed_fraction: removed_fraction(choice.features, total),
            dev: choice.dev,
            test: choice.test,
            max_relative_drop: fraction(choice.delta),
        }
    }
}

/// The clustering (a filter stage).
#[derive(Debug, Clone, Serialize)]
pub struct ClusteringSummary {
    pub selector: String,
    pub params: serde_json::Value,
    pub notes: String,
    pub features: usize,
    /// Share of the model's features removed, in [0, 1].
    pub removed_fraction: f64,
    pub dev: f64,
    pub test: f64,
    /// Size of the cluster behind each kept feature (may be empty).
    pub cluster_sizes: Vec<u32>,
}

impl ClusteringSummary {
    pub fn new(filter: &FilterResult, total: usize) -> Self {
        Self {
            selector: filter.selector.clone(),
            params: filter.params.clone(),
            notes: filter.notes.clone(),
            features: filter.features,
            removed_fraction: removed_fraction(filter.features, total),
            dev: filter.dev,
            test: filter.test,
            cluster_sizes: filter.cluster_sizes.clone(),
        }
    }
}

/// The final top-N selection.
#[derive(Debug, Clone, Serialize)]
pub struct SelectionSummary {
    pub selector: String,
    pub features: usize,
    /// Share of the model's features removed, in [0, 1].
    pub removed_fraction: f64,
    pub dev: f64,
    pub test: f64,
    /// The dev score the search had to stay close to.
    pub reference_dev: f64,
    /// The spec's `top_n.delta` as a fraction.
    pub max_relative_drop: f64,
    /// `reference_dev * (1 - max_relative_drop)`: the first N whose dev
    /// score is above it is chosen (unless a budget is set).
    pub dev_threshold: f64,
    /// The fixed number of neurons `top_n.target` asked for, if any.
    pub budget_features: Option<usize>,
    pub candidates: Vec<Candidate>,
    /// [layer, neuron] of every kept feature, most important first.
    pub neurons: Vec<[u32; 2]>,
}

impl SelectionSummary {
    pub fn new(selection: &FinalSelection, total: usize) -> Self {
        let max_relative_drop = fraction(selection.delta);
        Self {
            selector: selection.selector.clone(),
            features: selection.features,
            removed_fraction: removed_fraction(selection.features, total),
            dev: selection.dev,
            test: selection.test,
            reference_dev: selection.reference_dev,
            max_relative_drop,
            dev_threshold: selection.reference_dev * (1.0 - max_relative_drop),
            budget_features: selection.target,
            candidates: selection.candidates.clone(),
            neurons: selection.neurons.clone(),
        }
    }
}

/// The share of `total` features a stage removed, in [0, 1].
pub fn removed_fraction(features: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (1.0 - features as f64 / total as f64).clamp(0.0, 1.0)
}

/// A delta given in percent (the spec's unit) as a fraction.
fn fraction(percent: f64) -> f64 {
    percent / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_fraction_is_a_share_of_one() {
        assert_eq!(removed_fraction(0, 2688), 1.0);
        assert_eq!(removed_fraction(2688, 2688), 0.0);
        assert!((removed_fraction(269, 2688) - 0.899_925_6).abs() < 1e-6);
        assert_eq!(removed_fraction(3, 0), 0.0);
    }

    #[test]
    fn deltas_in_percent_become_fractions() {
        let choice = LayerChoice {
            k: 2,
            features: 3 * 384,
            dev: 0.9,
            test: 0.9,
            delta: 1.0,
        };
        let summary = LayerSelectorSummary::new(&choice, 2688);
        assert!((summary.max_relative_drop - 0.01).abs() < 1e-12);
        assert!((summary.removed_fraction - 4.0 / 7.0).abs() < 1e-12);
    }
}
