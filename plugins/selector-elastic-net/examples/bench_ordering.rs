//! Times the NeuroX ordering on random probe weights.
//!
//! ```text
//! cargo run --release -p sieve-selector-elastic-net --example bench_ordering -- 45 2688 1000
//! ```
//! Arguments: outputs, features, stride (defaults 45, 2688, 1000).

use std::time::Instant;

use sieve_selector_elastic_net::{neuron_ordering, Weights};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).map_or(default, String::as_str).to_string();
    let outputs: usize = arg(0, "45").parse().map_err(|e| format!("outputs: {e}"))?;
    let features: usize = arg(1, "2688")
        .parse()
        .map_err(|e| format!("features: {e}"))?;
    let stride: u32 = arg(2, "1000").parse().map_err(|e| format!("stride: {e}"))?;

    // Sparse, heavy-tailed weights, like an L1-penalised probe's.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f32> = (0..outputs * features)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            if u < 0.3 {
                0.0
            } else {
                (u - 0.65).powi(3) * 10.0
            }
        })
        .collect();
    let weights = Weights::new(&values, outputs, features).ok_or("shape")?;

    let start = Instant::now();
    let ordering = neuron_ordering(&weights, stride);
    let elapsed = start.elapsed();
    let first_step = ordering.cutoffs.first().copied().unwrap_or(0);
    println!(
        "{outputs} x {features}, stride {stride}: {:.2} ms ({} cutoffs, {first_step} neurons at p=0, {} reached)",
        elapsed.as_secs_f64() * 1e3,
        ordering.cutoffs.len(),
        ordering.reached
    );
    Ok(())
}
