//! `sieve plugins`: what the plugin folder holds.

use std::path::Path;

use anyhow::Result;

use crate::plugins::{plugin_dir, PluginRegistry};

pub fn list(dir: Option<&Path>) -> Result<()> {
    super::logging::init_stderr();
    let (dir, source) = plugin_dir(dir)?;
    let registry = PluginRegistry::discover(&dir, source)?;
    println!(
        "plugin folder: {} (from {})",
        dir.display(),
        source.describe()
    );
    println!(
        "{:<16} {:<9} {:<8} {:<10} file",
        "name", "kind", "version", "interface"
    );
    for p in &registry.plugins {
        println!(
            "{:<16} {:<9} {:<8} {:<10} {}",
            p.name,
            p.kind.as_str(),
            p.version,
            p.interface_version,
            p.file.display()
        );
    }
    for r in &registry.rejected {
        println!(
            "rejected: {} ({}): {}",
            r.file.display(),
            r.name.as_deref().unwrap_or("unknown"),
            r.reason
        );
    }
    if registry.plugins.is_empty() {
        println!("no plugins found; build them with `cargo build --release`");
    }
    Ok(())
}
