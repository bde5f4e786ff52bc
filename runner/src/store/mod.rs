//! The activation store: extracted activations on disk, reused across runs.
//!
//! Layout of one extraction (a folder named by its cache key):
//! ```text
//! <store>/<key>/manifest.json        what was extracted, from what, how
//! <store>/<key>/train.safetensors    activations F32 [rows, layers*hidden],
//! <store>/<key>/dev.safetensors      labels U32 [rows] (or targets F32),
//! <store>/<key>/test.safetensors     rows_per_unit U32 [units]
//! ```
//! Column `layer * hidden + neuron` is neuron `neuron` of hidden state
//! `layer`. numpy reads the files with `safetensors.numpy.load_file`.
//! An extraction is built in a temporary folder and renamed into place, so a
//! folder under its key is always complete.

mod manifest;
mod safetensors_io;

pub use manifest::{manifest_identity, ExtractionIdentity, Manifest, SplitEntry, MANIFEST_FORMAT};
pub use safetensors_io::{read_split, write_split, SplitArrays, SplitTargets, StoredSplit};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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
}

impl ActivationStore {
    pub fn new(dir: &Path) -> Self {
        ActivationStore {
            dir: dir.to_path_buf(),
        }
    }

    /// The folder an extraction with this key lives in.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Reads the extraction with `key`, if a complete one exists.
    /// A folder whose manifest or files do not check out is reported as an
    /// error rather than silently re-extracted over.
    pub fn load(&self, key: &str) -> Result<Option<StoredExtraction>> {
        let dir = self.entry_dir(key);
        let manifest_path = dir.join("manifest.json");
        if !manifest_path.exists() {
            return Ok(None);
        }
        let manifest = Manifest::read(&manifest_path)?;
        if manifest.key != key {
            anyhow::bail!(
                "{}: manifest key {} does not match its folder {key}; delete the folder to re-extract",
                manifest_path.display(),
                manifest.key
            );
        }
        let mut splits = Vec::with_capacity(SPLITS.len());
        for split in SPLITS {
            let entry = manifest.split(split)?;
            let stored =
                read_split(&dir.join(&entry.file), manifest.columns()).with_context(|| {
                    format!(
                        "stored extraction {} is damaged; delete it to re-extract",
                        dir.display()
                    )
                })?;
            if stored.rows != entry.rows {
                anyhow::bail!(
                    "{}: {} rows on disk, manifest says {}; delete the folder to re-extract",
                    dir.join(&entry.file).display(),
                    stored.rows,
                    entry.rows
                );
            }
            splits.push(stored);
        }
        Ok(Some(StoredExtraction {
            dir,
            manifest,
            splits,
        }))
    }

    /// Starts (or resumes) the extraction with `key`. Finished splits of an
    /// interrupted run are kept in `<key>.partial/` and reused, so a long
    /// extraction continues where it stopped.
    pub fn begin(&self, key: &str) -> Result<PendingExtraction> {
        let dir = self.dir.join(format!("{key}.partial"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(PendingExtraction {
            dir,
            final_dir: self.entry_dir(key),
            key: key.to_string(),
        })
    }
}

/// An extraction being written; invisible to `load` until `finish`.
pub struct PendingExtraction {
    dir: PathBuf,
    final_dir: PathBuf,
    key: String,
}

impl PendingExtraction {
    /// A split finished by an earlier, interrupted run, if its files check
    /// out (anything else is extracted again).
    pub fn completed_split(&self, name: &str, cols: usize) -> Option<(SplitEntry, StoredSplit)> {
        let entry_text = std::fs::read_to_string(self.entry_path(name)).ok()?;
        let entry: SplitEntry = serde_json::from_str(&entry_text).ok()?;
        let stored = read_split(&self.dir.join(&entry.file), cols).ok()?;
        (stored.rows == entry.rows).then_some((entry, stored))
    }

    /// Writes one finished split (file first, then its entry, each atomic).
    pub fn write_split(&self, mut entry: SplitEntry, arrays: &SplitArrays) -> Result<SplitEntry> {
        entry.file = format!("{}.safetensors", entry.name);
        entry.rows = arrays.rows;
        entry.units = arrays.rows_per_unit.len();
        write_split(&self.dir.join(&entry.file), arrays)?;
        write_atomic(
            &self.entry_path(&entry.name),
            serde_json::to_string(&entry)?.as_bytes(),
        )?;
        Ok(entry)
    }

    /// Writes the manifest and moves the folder to its final name.
    pub fn finish(self, manifest: &Manifest) -> Result<()> {
        if manifest.key != self.key {
            anyhow::bail!("internal error: manifest key differs from the extraction's key");
        }
        for split in SPLITS {
            let _ = std::fs::remove_file(self.entry_path(split));
        }
        write_atomic(
            &self.dir.join("manifest.json"),
            manifest.to_json()?.as_bytes(),
        )?;
        if self.final_dir.exists() {
            // A damaged or concurrent extraction under the same key: replace it.
            std::fs::remove_dir_all(&self.final_dir)
                .with_context(|| format!("cannot replace {}", self.final_dir.display()))?;
        }
        std::fs::rename(&self.dir, &self.final_dir).with_context(|| {
            format!(
                "cannot move the extraction into {}",
                self.final_dir.display()
            )
        })
    }

    fn entry_path(&self, split: &str) -> PathBuf {
        self.dir.join(format!("{split}.entry.json"))
    }
}

#[cfg(test)]
mod tests;
