//! `sieve run SPEC`

use std::path::Path;

use anyhow::Result;

use crate::pipeline::{run_experiment, RunOptions};
use crate::report::render_markdown;
use crate::spec::{check_files, load_spec};
use crate::util::atomic::write_atomic;

pub fn run(spec_path: &Path, options: RunOptions) -> Result<()> {
    let loaded = load_spec(spec_path)?;
    check_files(&loaded)?;
    super::set_threads(loaded.spec.threads);
    let output = loaded.output_dir();
    super::logging::init_with_file(&output)?;
    tracing::info!("running {} into {}", spec_path.display(), output.display());
    // What ran is kept beside what it produced.
    write_atomic(&output.join("spec.yaml"), loaded.text.as_bytes())?;
    let report = run_experiment(&loaded, options)?;
    println!("{}", render_markdown(&report));
    Ok(())
}
