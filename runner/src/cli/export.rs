//! `sieve export RUN_DIR OUT_DIR`

use std::path::Path;

use anyhow::Result;

use crate::slim::{export_run, ExportOptions};

pub fn export(run_dir: &Path, out_dir: &Path, options: &ExportOptions) -> Result<()> {
    super::logging::init_stderr();
    let manifest = export_run(run_dir, out_dir, options)?;
    println!(
        "exported {} neurons (hidden states 0..={} of {}, backend '{}') and a {}-class classifier to {}",
        manifest.neurons.len(),
        manifest.last_layer,
        manifest.model_layers,
        manifest.backend,
        manifest.classes.len(),
        out_dir.display()
    );
    println!("encoder: {}", manifest.encoder_note);
    println!("label text with: sieve predict {} FILE", out_dir.display());
    Ok(())
}
