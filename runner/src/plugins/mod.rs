//! Finding, loading and opening plugin libraries.
//!
//! Each library is loaded through its own header
//! (`lib_header_from_path` + `init_root_module`): abi_stable's
//! `RootModule::load_from_file` caches one module per interface type, so a
//! second plugin would silently come back as the first.

mod discovery;
mod loading;

pub use discovery::{plugin_dir, DirSource, PLUGIN_DIR_ENV};
pub use loading::{LoadedPlugin, PluginError, PluginRegistry};
