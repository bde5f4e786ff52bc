//! `sieve extract SPEC [--shard i/n]` and `sieve merge SPEC [STORE...]`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::pipeline::sharding;
use crate::spec::{check_files, load_spec, LoadedSpec};
use crate::store::Shard;

fn open(spec_path: &Path) -> Result<LoadedSpec> {
    let loaded = load_spec(spec_path)?;
    check_files(&loaded)?;
    super::set_threads(loaded.spec.threads);
    super::logging::init_stderr();
    Ok(loaded)
}

pub fn extract(spec_path: &Path, shard: Option<&str>) -> Result<()> {
    let shard = shard.map(Shard::parse).transpose()?;
    let loaded = open(spec_path)?;
    let outcome = sharding::extract(&loaded, shard)?;
    match (&outcome.finished, shard) {
        (Some(dir), _) if outcome.written == 0 && outcome.planned == 0 => {
            println!("already extracted: {}", dir.display())
        }
        (Some(dir), _) => println!(
            "extracted {} chunks; the store entry is complete: {}",
            outcome.written,
            dir.display()
        ),
        (None, Some(shard)) => println!(
            "shard {}/{}: {} of its {} chunks written now, the rest were on disk; {} chunks of all shards still missing in {}{}",
            shard.index,
            shard.count,
            outcome.written,
            outcome.planned,
            outcome.missing,
            outcome.partial.display(),
            if outcome.missing == 0 {
                format!("\nevery chunk is there: run `sieve merge {}` to finish the store entry", spec_path.display())
            } else {
                String::new()
            }
        ),
        (None, None) => println!("{} chunks still missing", outcome.missing),
    }
    Ok(())
}

pub fn merge(spec_path: &Path, sources: &[PathBuf]) -> Result<()> {
    let loaded = open(spec_path)?;
    let dir = sharding::merge(&loaded, sources)?;
    println!("the store entry is complete: {}", dir.display());
    Ok(())
}
