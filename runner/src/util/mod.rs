//! Small pieces shared across the runner.

pub mod atomic;
pub mod hashing;
