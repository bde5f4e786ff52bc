//! The activation store: extracted activations on disk, reused across runs.
//!
//! Layout of one extraction (a folder named by its cache key):
//! ```text
//! <store>/<key>/manifest.json            what was extracted, from what, how
//! <store>/<key>/train/00000.safetensors  chunk: activations F32|F16
//! <store>/<key>/train/00001.safetensors    [rows, layers*hidden], labels U32
//! <store>/<key>/dev/00000.safetensors      [rows] (or targets F32),
//! <store>/<key>/test/00000.safetensors     rows_per_unit U32 [units]
//! ```
//! Column `layer * hidden + neuron` is neuron `neuron` of hidden state
//! `layer`; a split's rows are its chunks' rows in file order (the manifest
//! lists them). numpy reads each file with `safetensors.numpy.load_file`.
//!
//! Extraction writes one chunk file at a time (atomically) into
//! `<key>.partial/`, so memory stays bounded by a chunk, an interrupted run
//! resumes at the first missing chunk, and shards of a cluster job can fill
//! the same folder (or folders merged later). Only when every chunk is there
//! is the manifest written and the folder renamed to `<key>`: a folder under
//! its key is always complete.
//!
//! Several processes may share a store at once (see [`lock`]): a reader
//! holds its entry's lock shared, a whole extraction exclusively, so a
//! second run of the same entry waits for the first and reuses its work,
//! and a finished entry is never replaced while it is read.

mod chunk_file;
mod columns;
mod lock;
mod manifest;
mod plan;
mod split;

pub use chunk_file::{ChunkArrays, ChunkEntry, ChunkFile, SplitTargets, StorageDtype};
pub use columns::Columns;
pub use lock::{EntryLock, LockMode};
pub use manifest::{ExtractionIdentity, Manifest, SplitEntry, MANIFEST_FORMAT};
pub use plan::{ChunkPlan, PlannedChunk, Shard};
pub use split::StoredSplit;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::util::atomic::write_atomic;

pub const SPLITS: [&str; 3] = ["train", "dev", "test"];

/// A store folder holding extractions keyed by their identity.
pub struct ActivationStore {
    dir: PathBuf,
}

/// A complete extraction read back from the store.
pub struct StoredExtraction {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// train, dev, test, in that order.
    pub splits: Vec<StoredSplit>,
    /// Held shared while the extraction is in use: no other process can
    /// replace the entry under its readers.
    _lock: EntryLock,
}

impl ActivationStore {
    pub fn new(dir: &Path) -> Self {
        ActivationStore {
            dir: dir.to_path_buf(),
        }
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder an extraction with this key lives in.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Reads the extraction with `key`, if a complete one exists.
    /// A folder whose manifest or files do not check out is reported as an
    /// error rather than silently re-extracted over.
    ///
    /// Waits while another process writes the entry.
    pub fn load(&self, key: &str) -> Result<Option<StoredExtraction>> {
        let dir = self.entry_dir(key);
        let manifest_path = dir.join("manifest.json");
        if !manifest_path.exists() && !self.dir.join(format!("{key}.partial")).exists() {
            return Ok(None);
        }
        let lock = EntryLock::acquire(&self.dir, key, LockMode::Shared, "reading it")?;
        if !manifest_path.exists() {
            return Ok(None);
        }
        let manifest = Manifest::read(&manifest_path)?;
        if manifest.key != key {
            bail!(
                "{}: manifest key {} does not match its folder {key}; delete the folder to re-extract",
                manifest_path.display(),
                manifest.key
            );
        }
        let mut splits = Vec::with_capacity(SPLITS.len());
        for split in SPLITS {
            let entry = manifest.split(split)?;
            let stored = StoredSplit::open(&dir, entry, manifest.columns()).with_context(|| {
                format!(
                    "stored extraction {} is damaged; delete it to re-extract",
                    dir.display()
                )
            })?;
            splits.push(stored);
        }
        Ok(Some(StoredExtraction {
            dir,
            manifest,
            splits,
            _lock: lock,
        }))
    }

    /// Starts (or resumes) the whole extraction with `key`, holding its
    /// lock exclusively (waiting for any other process using the entry).
    /// Chunks finished by an interrupted run or by shards are kept in
    /// `<key>.partial/`.
    pub fn begin(&self, key: &str) -> Result<PendingExtraction> {
        self.begin_as(key, LockMode::Exclusive)
    }

    /// Starts (or resumes) one shard's part of the extraction with `key`:
    /// shards hold the lock shared, so several fill the partial folder at
    /// once; only a whole extraction or a merge may finish the entry.
    pub fn begin_shard(&self, key: &str) -> Result<PendingExtraction> {
        self.begin_as(key, LockMode::Shared)
    }

    fn begin_as(&self, key: &str, mode: LockMode) -> Result<PendingExtraction> {
        let lock = EntryLock::acquire(&self.dir, key, mode, "extracting into it")?;
        let dir = self.dir.join(format!("{key}.partial"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(PendingExtraction {
            dir,
            final_dir: self.entry_dir(key),
            key: key.to_string(),
            mode,
            _lock: lock,
        })
    }

    /// True when a finished entry with `key` is on disk (no lock taken:
    /// for a writer that already holds the entry exclusively).
    pub fn is_finished(&self, key: &str) -> bool {
        self.entry_dir(key).join("manifest.json").exists()
    }

    /// The unfinished extraction folder for `key`, if one exists.
    pub fn partial_dir(&self, key: &str) -> Option<PathBuf> {
        let dir = self.dir.join(format!("{key}.partial"));
        dir.is_dir().then_some(dir)
    }
}

/// An extraction being written; invisible to `load` until `finish`.
pub struct PendingExtraction {
    dir: PathBuf,
    final_dir: PathBuf,
    key: String,
    mode: LockMode,
    _lock: EntryLock,
}

impl PendingExtraction {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chunk `planned` as finished earlier (by an interrupted run or
    /// another shard), if its file is there and is exactly that chunk.
    /// Anything else is extracted again.
    pub fn completed_chunk(&self, planned: &PlannedChunk, cols: usize) -> Option<ChunkFile> {
        let path = self.dir.join(planned.file(SPLITS[planned.split]));
        let chunk = ChunkFile::open(&path, cols).ok()?;
        let matches = chunk.entry.first_unit == planned.units.start
            && chunk.entry.units == planned.units.len()
            && chunk.rows == planned.rows;
        matches.then_some(chunk)
    }

    /// Writes one finished chunk atomically.
    pub fn write_chunk(
        &self,
        planned: &PlannedChunk,
        arrays: &ChunkArrays<'_>,
        mut entry: ChunkEntry,
    ) -> Result<ChunkEntry> {
        entry.file = planned.file(SPLITS[planned.split]);
        entry.first_unit = planned.units.start;
        entry.units = planned.units.len();
        entry.rows = arrays.rows;
        chunk_file::write_chunk(&self.dir.join(&entry.file), arrays, &entry)?;
        Ok(entry)
    }

    /// Copies the chunks of `plan` that `source` (another store's partial
    /// folder for the same key, e.g. a shard's) holds and this one lacks.
    /// Returns how many were copied; a chunk that does not match the plan
    /// is an error naming the file.
    pub fn import_chunks(&self, source: &Path, plan: &ChunkPlan, cols: usize) -> Result<usize> {
        let mut copied = 0;
        for planned in &plan.chunks {
            let file = planned.file(SPLITS[planned.split]);
            let from = source.join(&file);
            if !from.exists() || self.completed_chunk(planned, cols).is_some() {
                continue;
            }
            let chunk = ChunkFile::open(&from, cols)?;
            if chunk.entry.first_unit != planned.units.start || chunk.rows != planned.rows {
                bail!(
                    "{} holds units from {} ({} rows), this spec's plan expects units from {} ({} rows): was it extracted with another store.chunk_rows?",
                    from.display(),
                    chunk.entry.first_unit,
                    chunk.rows,
                    planned.units.start,
                    planned.rows
                );
            }
            let to = self.dir.join(&file);
            let bytes =
                std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
            write_atomic(&to, &bytes)?;
            copied += 1;
        }
        Ok(copied)
    }

    /// The planned chunks not yet on disk.
    pub fn missing_chunks<'p>(&self, plan: &'p ChunkPlan, cols: usize) -> Vec<&'p PlannedChunk> {
        plan.chunks
            .iter()
            .filter(|c| self.completed_chunk(c, cols).is_none())
            .collect()
    }

    /// Writes the manifest (its splits listed from the chunk files on disk)
    /// and moves the folder to its final name. Fails, naming the first
    /// missing chunk, unless every planned chunk is there.
    pub fn finish(self, mut manifest: Manifest, plan: &ChunkPlan) -> Result<Manifest> {
        if manifest.key != self.key {
            bail!("internal error: manifest key differs from the extraction's key");
        }
        if self.mode != LockMode::Exclusive {
            bail!("internal error: a shard cannot finish an extraction; run `sieve merge`");
        }
        let cols = manifest.columns();
        let mut splits = Vec::with_capacity(SPLITS.len());
        for (index, name) in SPLITS.iter().enumerate() {
            let mut chunks = Vec::new();
            for planned in plan.split_chunks(index) {
                let chunk = self.completed_chunk(planned, cols).with_context(|| {
                    format!(
                        "{} is missing: the extraction is not complete",
                        self.dir.join(planned.file(name)).display()
                    )
                })?;
                chunks.push(chunk.entry);
            }
            splits.push(SplitEntry::from_chunks(name, chunks));
        }
        manifest.set_splits(splits);
        write_atomic(
            &self.dir.join("manifest.json"),
            manifest.to_json()?.as_bytes(),
        )?;
        if self.final_dir.exists() {
            // A damaged entry, or one the spec asked to redo
            // (`store.reuse: false`): no reader holds it, since this
            // process holds the entry's lock exclusively.
            std::fs::remove_dir_all(&self.final_dir)
                .with_context(|| format!("cannot replace {}", self.final_dir.display()))?;
        }
        std::fs::rename(&self.dir, &self.final_dir).with_context(|| {
            format!(
                "cannot move the extraction into {}",
                self.final_dir.display()
            )
        })?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests;
