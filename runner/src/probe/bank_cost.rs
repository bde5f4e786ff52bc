//! What a probe bank costs, in columns' worth of work per step: the model
//! the stages use to decide which probes to train together.

/// A probe's fixed work per step, in columns' worth of work: measured on
/// WSJ (42 classes, bf16), a bank's probe of n columns took about
/// 0.027 s + 0.0002 s x n over its 10 epochs, so ~135 columns.
pub const PROBE_FIXED_COLUMNS: usize = 128;

/// One step of a probe of `columns` columns.
pub fn probe_cost(columns: usize) -> usize {
    columns + PROBE_FIXED_COLUMNS
}

/// One step of a bank whose probes have `widths` columns, on `threads`
/// threads that each take the longest step not yet started (as the bank
/// does, see `longest_first`): the most work one thread ends up with. A
/// probe's step runs on one thread, so a bank costs at least its widest
/// probe, and probes that do not pack evenly cost more than their columns
/// over the threads.
pub fn bank_step_cost(widths: impl IntoIterator<Item = usize>, threads: usize) -> usize {
    let mut costs: Vec<usize> = widths.into_iter().map(probe_cost).collect();
    costs.sort_unstable_by(|a, b| b.cmp(a));
    let mut loads = vec![0usize; threads.max(1)];
    for cost in costs {
        // The least loaded thread takes the next longest step.
        if let Some(load) = loads.iter_mut().min() {
            *load += cost;
        }
    }
    loads.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_costs_its_widest_probe_or_its_packing() {
        let fixed = PROBE_FIXED_COLUMNS;
        assert_eq!(bank_step_cost([], 2), 0);
        assert_eq!(bank_step_cost([100], 2), 100 + fixed);
        // Two equal probes on two threads: one each.
        assert_eq!(bank_step_cost([100, 100], 2), 100 + fixed);
        // One thread does everything.
        assert_eq!(bank_step_cost([100, 50, 10], 1), 160 + 3 * fixed);
        // Longest first: 1000 | 600, 500 joins the 600, 300 the 1000.
        assert_eq!(
            bank_step_cost([300, 500, 1000, 600], 2),
            (1000 + fixed) + (300 + fixed)
        );
        // More threads than probes: the widest alone.
        assert_eq!(bank_step_cost([7, 9], 8), 9 + fixed);
    }
}
