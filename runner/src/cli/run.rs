//! `sieve run SPEC`

use std::path::Path;

use anyhow::Result;

use crate::pipeline::{run_experiment, RunOptions};
use crate::report::render_markdown;
use crate::spec::{check_files, load_spec};

pub fn run(spec_path: &Path, options: RunOptions) -> Result<()> {
    let loaded = load_spec(spec_path)?;
    check_files(&loaded)?;
    super::set_threads(loaded.spec.threads);
    let output = loaded.output_dir();
    super::logging::init_with_file(&output)?;
    tracing::info!("running {} into {}", spec_path.display(), output.display());
    let report = run_experiment(&loaded, options)?;
    println!("{}", render_markdown(&report));
    Ok(())
}
