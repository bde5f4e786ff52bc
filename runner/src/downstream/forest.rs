//! A random forest of smartcore trees, fitted in parallel: tree `i` is a
//! one-tree smartcore `RandomForestClassifier` (bootstrap sample and feature
//! subsets included) seeded from `(seed, i)`, so the forest is the same for
//! any thread count. Prediction is a majority vote (ties: lowest class).

use rayon::prelude::*;
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::dense;
use crate::probe::SplitMix64;

type Tree = RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

pub(super) struct Forest {
    trees: Vec<Tree>,
    features: usize,
    num_classes: usize,
}

impl Forest {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fit(
        x: &[f64],
        y: &[u32],
        features: usize,
        num_classes: usize,
        trees: usize,
        max_depth: Option<u16>,
        split_features: Option<usize>,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let matrix = dense(x, y.len(), features)?;
        let labels = y.to_vec();
        let trees = (0..trees)
            .into_par_iter()
            .map(|i| {
                let tree_seed = SplitMix64::for_stream(seed, 0xF0_7E57 + i as u64).next_u64();
                let mut params = RandomForestClassifierParameters::default()
                    .with_n_trees(1)
                    .with_seed(tree_seed);
                if let Some(depth) = max_depth {
                    params = params.with_max_depth(depth);
                }
                if let Some(m) = split_features {
                    params = params.with_m(m.clamp(1, features));
                }
                RandomForestClassifier::fit(&matrix, &labels, params)
                    .map_err(|e| anyhow::anyhow!("smartcore random forest: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            trees,
            features,
            num_classes,
        })
    }

    pub(super) fn predict(&self, z: &[f64]) -> anyhow::Result<Vec<u32>> {
        let rows = z.len() / self.features;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let matrix = dense(z, rows, self.features)?;
        let votes = self
            .trees
            .par_iter()
            .map(|tree| {
                tree.predict(&matrix)
                    .map_err(|e| anyhow::anyhow!("smartcore random forest: {e}"))
            })
            .collect::<anyhow::Result<Vec<Vec<u32>>>>()?;
        let mut counts = vec![0u32; self.num_classes];
        Ok((0..rows)
            .map(|r| {
                counts.iter_mut().for_each(|c| *c = 0);
                for v in &votes {
                    counts[v[r] as usize] += 1;
                }
                let top = counts.iter().copied().max().unwrap_or(0);
                counts.iter().position(|&c| c == top).unwrap_or(0) as u32
            })
            .collect())
    }
}
