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
/// threads. The probes step on their own, each thread taking whatever is
/// ready (see `bf16::free_running`), so a bank costs its probes' work
/// spread evenly over the threads, or its widest probe where that is more
/// (a probe's step runs on one thread).
pub fn bank_step_cost(widths: impl IntoIterator<Item = usize>, threads: usize) -> usize {
    let costs: Vec<usize> = widths.into_iter().map(probe_cost).collect();
    let widest = costs.iter().max().copied().unwrap_or(0);
    let total: usize = costs.iter().sum();
    widest.max(total.div_ceil(threads.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_costs_its_widest_probe_or_its_share_per_thread() {
        let fixed = PROBE_FIXED_COLUMNS;
        assert_eq!(bank_step_cost([], 2), 0);
        assert_eq!(bank_step_cost([100], 2), 100 + fixed);
        // Two equal probes on two threads: one each.
        assert_eq!(bank_step_cost([100, 100], 2), 100 + fixed);
        // One thread does everything.
        assert_eq!(bank_step_cost([100, 50, 10], 1), 160 + 3 * fixed);
        // The work spread over two threads is more than the widest probe.
        assert_eq!(
            bank_step_cost([300, 500, 1000, 600], 2),
            (2400 + 4 * fixed) / 2
        );
        // One wide probe outweighs the rest: the bank waits for it.
        assert_eq!(bank_step_cost([2000, 10, 10], 2), 2000 + fixed);
        // More threads than probes: the widest alone.
        assert_eq!(bank_step_cost([7, 9], 8), 9 + fixed);
    }
}
