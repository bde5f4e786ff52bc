//! The Sieve plugin interface.
//!
//! Everything that crosses the boundary between the `sieve` runner and a
//! plugin library is defined here, with `abi_stable` so that a plugin built
//! separately (even by a third party, against this crate alone) is checked
//! for layout compatibility when it is loaded.
//!
//! Two kinds of plugin exist:
//! - a **backend** turns text into per-layer activations ([`backend`]);
//! - a **selector** filters or ranks features ([`selector`]), optionally
//!   training probes through a service the host hands it ([`ProbeHost`]).
//!
//! A plugin library exports one root module, [`SievePlugin`]; the
//! [`export_backend_plugin!`] and [`export_selector_plugin!`] macros write it
//! and wrap every call so that a panic inside the plugin becomes an error
//! instead of unwinding across the boundary. Since interface version 2 the
//! root module also has a `validate` entry: the plugin checks its own
//! parameters (with [`parse_params`]) before the host does any work.

// `#[sabi_trait]` expands to impls of generated items outside their
// module; the lint does not apply to generated interface code.
#![allow(non_local_definitions)]

pub mod backend;
mod guard;
pub mod matrix;
pub mod params;
pub mod plugin;
pub mod rng;
pub mod selector;
pub mod testing;

pub use backend::*;
pub use guard::catch_plugin_panic;
pub use matrix::MatrixView;
pub use params::{param_error, parameter_named_in, parse_params};
pub use plugin::*;
pub use rng::SplitMix64;
pub use selector::*;

/// Re-exported so that plugins and the export macros name the exact
/// `abi_stable` version this interface was built with.
pub use abi_stable;
