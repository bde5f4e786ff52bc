//! The `sieve` runner as a library: everything the binary does, callable
//! from tests and benchmarks.

pub mod data;
pub mod plugins;
pub mod probe;
pub mod store;
pub mod util;
pub mod cli;
pub mod pipeline;
pub mod report;
pub mod spec;
