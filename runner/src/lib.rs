//! The `sieve` runner as a library: everything the binary does, callable
//! from tests and benchmarks.

pub mod cli;
pub mod data;
pub mod downstream;
pub mod pipeline;
pub mod plugins;
pub mod probe;
pub mod report;
pub mod slim;
pub mod spec;
pub mod store;
pub mod util;
