//! The linear probe (owned by the probe work).
