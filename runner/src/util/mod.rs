//! Small pieces shared across the runner.

pub mod atomic;
pub mod hash_cache;
pub mod hashing;
pub mod progress;
