//! The NeuroX neuron ordering (`get_top_neurons`, `get_neuron_ordering`).
//!
//! For a fraction `p` of the weight mass, each output (class) `c` keeps the
//! shortest run of its neurons, sorted by `|W[c, j]|` descending, whose
//! cumulative sum reaches `p * sum_j |W[c, j]|`; the top neurons at `p` are
//! the union over classes. Sweeping `p = i / stride` for `i = 0..=stride`
//! and appending the neurons new at each step gives the ordering; the
//! length of the ordering after each step is that step's cutoff.
//!
//! Where this differs from NeuroX's Python, and why:
//! - Ties in `|W|` within a class are broken by the lower index (NumPy's
//!   `argsort(...)[::-1]` breaks them arbitrarily), and the neurons new at a
//!   step are ordered by total mass `sum_c |W[c, j]|` descending, then index
//!   (NeuroX lists them in Python `set` order): the ordering becomes a
//!   function of the weights alone.
//! - Sums are f64, and a class's total is the last entry of its own
//!   cumulative sum (NeuroX compares a float32 `cumsum` against a float32
//!   `np.sum`, whose rounding differs): so `p = 1` stops exactly at the last
//!   neuron with non-zero weight instead of sometimes taking every neuron.
//! - A class whose weights are all zero contributes nothing (NeuroX's prefix
//!   is never empty, so it would add one arbitrary zero-weight neuron).
//! - Neurons the sweep never reaches (zero weight in every class) are
//!   appended at the end, by mass then index, with a final cutoff at the
//!   total, so the ordering ranks every column.
//!
//! As in NeuroX the prefix at `p = 0` has length 1 (the class's heaviest
//! neuron), and there is one cutoff per step even when a step adds nothing.

/// Probe weights: row-major `[outputs, features]`.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    pub values: &'a [f32],
    pub outputs: usize,
    pub features: usize,
}

impl<'a> Weights<'a> {
    /// `None` unless `values` has `outputs * features` entries.
    pub fn new(values: &'a [f32], outputs: usize, features: usize) -> Option<Self> {
        (outputs.checked_mul(features)? == values.len()).then_some(Weights {
            values,
            outputs,
            features,
        })
    }

    fn class(&self, c: usize) -> &'a [f32] {
        &self.values[c * self.features..(c + 1) * self.features]
    }
}

/// The result of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronOrdering {
    /// Every feature index once, most important first.
    pub order: Vec<u32>,
    /// Length of `order` after each step `i = 0..=stride`, then the total
    /// when unreached neurons were appended.
    pub cutoffs: Vec<u32>,
    /// `sum_c |W[c, j]|` of each entry of `order`.
    pub mass: Vec<f64>,
    /// How many neurons the sweep itself reached (the rest were appended).
    pub reached: usize,
}

/// `sum_c |W[c, j]|` for every feature `j`, summed over classes in order.
pub fn weight_mass(w: &Weights<'_>) -> Vec<f64> {
    let mut mass = vec![0.0f64; w.features];
    for c in 0..w.outputs {
        for (m, &v) in mass.iter_mut().zip(w.class(c)) {
            *m += f64::from(v.abs());
        }
    }
    mass
}

/// One class's neurons by `|w|` descending (ties: lower index) and the
/// running sum of their `|w|`.
struct ClassMass {
    order: Vec<u32>,
    cumulative: Vec<f64>,
}

impl ClassMass {
    fn new(weights: &[f32]) -> Self {
        let abs: Vec<f64> = weights.iter().map(|&v| f64::from(v.abs())).collect();
        let mut order: Vec<u32> = (0..weights.len() as u32).collect();
        order.sort_by(|&a, &b| abs[b as usize].total_cmp(&abs[a as usize]).then(a.cmp(&b)));
        let mut sum = 0.0;
        let cumulative = order
            .iter()
            .map(|&j| {
                sum += abs[j as usize];
                sum
            })
            .collect();
        ClassMass { order, cumulative }
    }

    /// Length of the shortest prefix whose sum reaches `fraction` of the
    /// class's total (at least 1, as NeuroX); 0 for a class without weight.
    fn prefix_len(&self, fraction: f64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        if total <= 0.0 {
            return 0;
        }
        let target = total * fraction;
        let first = self.cumulative.partition_point(|&s| s < target);
        (first + 1).min(self.order.len())
    }
}

/// NeuroX `get_top_neurons`: the union over classes of the neurons that
/// carry `fraction` of each class's weight mass, ascending.
pub fn top_neurons(w: &Weights<'_>, fraction: f64) -> Vec<u32> {
    let mut selected = vec![false; w.features];
    for c in 0..w.outputs {
        let class = ClassMass::new(w.class(c));
        for &j in &class.order[..class.prefix_len(fraction)] {
            selected[j as usize] = true;
        }
    }
    (0..w.features as u32)
        .filter(|&j| selected[j as usize])
        .collect()
}

/// NeuroX `get_neuron_ordering` with `search_stride = stride` (`>= 1`),
/// made deterministic and complete as the module documentation says.
pub fn neuron_ordering(w: &Weights<'_>, stride: u32) -> NeuronOrdering {
    let stride = stride.max(1);
    let mass = weight_mass(w);
    let classes: Vec<ClassMass> = (0..w.outputs).map(|c| ClassMass::new(w.class(c))).collect();
    // Prefixes only grow with p, so each class resumes where it stopped.
    let mut taken = vec![0usize; w.outputs];
    let mut selected = vec![false; w.features];
    let mut order = Vec::with_capacity(w.features);
    let mut cutoffs = Vec::with_capacity(stride as usize + 2);
    for i in 0..=stride {
        let fraction = f64::from(i) / f64::from(stride);
        let mut new = Vec::new();
        for (class, taken) in classes.iter().zip(taken.iter_mut()) {
            let len = class.prefix_len(fraction).max(*taken);
            for &j in &class.order[*taken..len] {
                if !selected[j as usize] {
                    selected[j as usize] = true;
                    new.push(j);
                }
            }
            *taken = len;
        }
        sort_by_mass(&mut new, &mass);
        order.extend(new);
        cutoffs.push(order.len() as u32);
    }
    let reached = order.len();
    let mut rest: Vec<u32> = (0..w.features as u32)
        .filter(|&j| !selected[j as usize])
        .collect();
    if !rest.is_empty() {
        sort_by_mass(&mut rest, &mass);
        order.extend(rest);
        cutoffs.push(order.len() as u32);
    }
    let mass = order.iter().map(|&j| mass[j as usize]).collect();
    NeuronOrdering {
        order,
        cutoffs,
        mass,
        reached,
    }
}

/// Heaviest first; equal mass by index.
fn sort_by_mass(neurons: &mut [u32], mass: &[f64]) {
    neurons.sort_by(|&a, &b| {
        mass[b as usize]
            .total_cmp(&mass[a as usize])
            .then(a.cmp(&b))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_reaches_the_fraction_of_each_class() {
        // |w| sorted: 4 (j=1), 3 (j=3), 2 (j=0), 1 (j=2); total 10.
        let class = ClassMass::new(&[2.0, -4.0, 1.0, 3.0]);
        assert_eq!(class.order, vec![1, 3, 0, 2]);
        assert_eq!(class.prefix_len(0.0), 1);
        assert_eq!(class.prefix_len(0.4), 1);
        assert_eq!(class.prefix_len(0.41), 2);
        assert_eq!(class.prefix_len(0.7), 2);
        assert_eq!(class.prefix_len(0.9), 3);
        assert_eq!(class.prefix_len(1.0), 4);
        assert_eq!(ClassMass::new(&[0.0, 0.0]).prefix_len(0.5), 0);
        // Trailing zeros are never needed to reach the total.
        assert_eq!(ClassMass::new(&[0.0, 1.0, 0.0]).prefix_len(1.0), 1);
    }

    #[test]
    fn ordering_appends_new_neurons_per_step_and_unreached_last() {
        // Two classes over five features; feature 4 has no weight.
        let values = [
            1.0, 0.0, 0.0, 3.0, 0.0, //
            0.0, 2.0, 0.5, 0.0, 0.0,
        ];
        let w = Weights::new(&values, 2, 5).unwrap();
        let o = neuron_ordering(&w, 4);
        // Class 0 by |w|: 3 (j=3), 1 (j=0), total 4; class 1: 2 (j=1),
        // 0.5 (j=2), total 2.5. Up to p = 0.75 each class's first neuron
        // suffices (3 >= 0.75 * 4, 2 >= 0.75 * 2.5); p = 1 adds 0 and 2.
        assert_eq!(o.order, vec![3, 1, 0, 2, 4]);
        assert_eq!(o.cutoffs, vec![2, 2, 2, 2, 4, 5]);
        assert_eq!(o.reached, 4);
        assert_eq!(o.mass, vec![3.0, 2.0, 1.0, 0.5, 0.0]);
        assert_eq!(top_neurons(&w, 0.0), vec![1, 3]);
        assert_eq!(top_neurons(&w, 1.0), vec![0, 1, 2, 3]);
    }
}
