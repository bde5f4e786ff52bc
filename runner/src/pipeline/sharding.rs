//! Extraction without the experiment: one shard of a cluster job, or all
//! of it, and the merge that turns the shards' chunks into one store entry.
//!
//! A shard extracts the chunks the plan deals it into the store's
//! `<key>.partial/` folder. On a shared file system every shard can use the
//! same store folder; otherwise each writes its own and `merge` copies the
//! chunks over. `merge` (or a later `sieve run`, which extracts whatever is
//! still missing) finishes the entry once every chunk is there.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::spec::LoadedSpec;
use crate::store::Shard;

use super::ExtractionSetup;

/// What `sieve extract` did.
pub struct ExtractOutcome {
    pub written: usize,
    pub planned: usize,
    /// The finished store entry, when nothing is missing any more.
    pub finished: Option<PathBuf>,
    /// The folder chunks go to while the extraction is unfinished.
    pub partial: PathBuf,
    pub missing: usize,
}

/// Extracts the chunks of `shard` (all, when `None`) that are not on disk
/// yet. Without a shard the entry is finished; a shard leaves that to
/// `merge` so that concurrent shards never race to rename the folder.
pub fn extract(loaded: &LoadedSpec, shard: Option<Shard>) -> Result<ExtractOutcome> {
    let setup = ExtractionSetup::open(loaded)?;
    let key = setup.manifest.key.clone();
    if let Some(stored) = setup.store.load(&key)? {
        return Ok(ExtractOutcome {
            written: 0,
            planned: 0,
            finished: Some(stored.dir),
            partial: setup.store.entry_dir(&key),
            missing: 0,
        });
    }
    let extractor = setup.extractor(loaded);
    extractor.check_room(&setup.store, &setup.manifest, &setup.splits)?;
    let plan = extractor.plan(&setup.splits);
    let cols = setup.manifest.columns();
    let pending = match shard {
        Some(_) => setup.store.begin_shard(&key)?,
        None => setup.store.begin(&key)?,
    };
    if shard.is_none() && setup.store.is_finished(&key) {
        // Another process finished the entry while we waited for it.
        return Ok(ExtractOutcome {
            written: 0,
            planned: 0,
            finished: Some(setup.store.entry_dir(&key)),
            partial: pending.dir().to_path_buf(),
            missing: 0,
        });
    }
    let written =
        extractor.extract_chunks(&pending, &plan, cols, &setup.splits, &setup.targets, shard)?;
    let planned = plan
        .chunks
        .iter()
        .filter(|c| shard.is_none_or(|s| s.owns(c)))
        .count();
    let partial = pending.dir().to_path_buf();
    let missing = pending.missing_chunks(&plan, cols).len();
    let finished = if shard.is_none() {
        pending.finish(setup.manifest.clone(), &plan)?;
        Some(setup.store.entry_dir(&key))
    } else {
        None
    };
    Ok(ExtractOutcome {
        written,
        planned,
        finished,
        partial,
        missing,
    })
}

/// Copies the chunks found in `sources` (store folders of shards run with
/// the same spec, or their `<key>.partial` folders) into this spec's store
/// and finishes the entry. Fails, listing what is missing, if chunks are
/// still absent.
pub fn merge(loaded: &LoadedSpec, sources: &[PathBuf]) -> Result<PathBuf> {
    let setup = ExtractionSetup::open(loaded)?;
    let key = setup.manifest.key.clone();
    if setup.store.load(&key)?.is_some() && sources.is_empty() {
        return Ok(setup.store.entry_dir(&key));
    }
    let plan = setup.extractor(loaded).plan(&setup.splits);
    let cols = setup.manifest.columns();
    let pending = setup.store.begin(&key)?;
    for source in sources {
        let partial = source.join(format!("{key}.partial"));
        let folder = if partial.is_dir() {
            partial
        } else if source.join(&key).is_dir() {
            source.join(&key)
        } else if source.is_dir()
            && source
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&key))
        {
            source.clone()
        } else {
            bail!(
                "{} holds no chunks of extraction {key} (no {key}.partial/ or {key}/ inside): was the shard run with the same spec and data?",
                source.display()
            );
        };
        let copied = pending.import_chunks(&folder, &plan, cols)?;
        tracing::info!("{}: {copied} chunks copied", folder.display());
    }
    let missing = pending.missing_chunks(&plan, cols);
    if let Some(first) = missing.first() {
        bail!(
            "{} of {} chunks are still missing (the first is chunk {} of the {} split, global chunk {}, which shard i/n extracts when i = {} mod n); run the shards that own them (`sieve extract SPEC --shard i/n`) and merge again",
            missing.len(),
            plan.chunks.len(),
            first.index,
            crate::store::SPLITS[first.split],
            first.global_index,
            first.global_index
        );
    }
    pending.finish(setup.manifest.clone(), &plan)?;
    Ok(setup.store.entry_dir(&key))
}
