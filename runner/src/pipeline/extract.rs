//! Extraction: every unit through the backend once, into the store.

use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sieve_core::{EncodeRequest, EncodedRows, EncoderBox, RowLevel, TextUnit};
use tracing::info;

use crate::data::Unit;
use crate::plugins::LoadedPlugin;
use crate::spec::LoadedSpec;
use crate::store::{
    ActivationStore, ChunkArrays, ChunkEntry, ChunkPlan, Manifest, PendingExtraction, PlannedChunk,
    Shard, StorageDtype, StoredExtraction, SPLITS,
};

use super::corpora::{EncodedTargets, Splits};

/// Units handed to the backend per call: enough for its length-sorted
/// batching to pay off, few enough for a smooth progress bar.
const UNITS_PER_CALL: usize = 256;

/// The loaded backend and how it is asked for rows.
pub struct Extractor<'a> {
    pub plugin: &'a LoadedPlugin,
    pub encoder: &'a EncoderBox,
    pub loaded: &'a LoadedSpec,
    /// Hidden states 0..=last_layer are extracted.
    pub last_layer: u32,
}

/// An extraction read from the store, and whether it was made by this run.
pub struct Extraction {
    pub stored: StoredExtraction,
    pub reused: bool,
}

impl Extractor<'_> {
    fn request(&self, units: &[Unit]) -> EncodeRequest {
        let data = &self.loaded.spec.data;
        let word_level = data.is_word_level();
        EncodeRequest {
            units: units
                .iter()
                .map(|u| {
                    if word_level {
                        TextUnit::words(&u.words)
                    } else {
                        TextUnit::sentence(&u.text, u.pair.as_deref())
                    }
                })
                .collect(),
            level: if word_level {
                RowLevel::Word
            } else {
                RowLevel::Sentence
            },
            subword_pooling: data.subword_pooling.into(),
            sentence_pooling: data.sentence_pooling.into(),
            last_layer: self.last_layer,
            batch_size: self.loaded.spec.model.batch_size,
        }
    }

    /// Encodes `units` in calls of [`UNITS_PER_CALL`], checking that the
    /// backend returned one row per word (or per sentence).
    pub fn encode_units(&self, units: &[Unit], progress: &ProgressBar) -> Result<EncodedRows> {
        let mut all = EncodedRows::default();
        self.for_each_call(units, progress, |rows| {
            all.values.extend_from_slice(&rows.values);
            all.rows += rows.rows;
            all.layers = rows.layers;
            all.hidden = rows.hidden;
            all.rows_per_unit.extend_from_slice(&rows.rows_per_unit);
            all.subword_tokens += rows.subword_tokens;
            all.windowed_units += rows.windowed_units;
        })?;
        Ok(all)
    }

    /// Encodes `units` in calls of [`UNITS_PER_CALL`] and hands each call's
    /// checked rows to `take`, in unit order.
    pub fn for_each_call(
        &self,
        units: &[Unit],
        progress: &ProgressBar,
        mut take: impl FnMut(EncodedRows),
    ) -> Result<()> {
        for chunk in units.chunks(UNITS_PER_CALL) {
            let request = self.request(chunk);
            let rows = self
                .plugin
                .check_result("encode", self.encoder.encode(&request))?;
            self.check_rows(chunk, &rows)?;
            take(rows);
            progress.inc(chunk.len() as u64);
        }
        Ok(())
    }

    fn check_rows(&self, units: &[Unit], rows: &EncodedRows) -> Result<()> {
        let word_level = self.loaded.spec.data.is_word_level();
        let expected: Vec<u32> = units
            .iter()
            .map(|u| if word_level { u.words.len() as u32 } else { 1 })
            .collect();
        let layers = self.last_layer + 1;
        let consistent = rows.rows_per_unit.as_slice() == expected.as_slice()
            && rows.layers == layers
            && rows.values.len() as u64 == rows.rows * rows.layers as u64 * rows.hidden as u64
            && rows.rows == expected.iter().map(|&r| r as u64).sum::<u64>();
        if !consistent {
            bail!(
                "backend '{}' returned rows that do not match the request ({} rows in {} layers for {} units); this is a bug in the plugin",
                self.plugin.name,
                rows.rows,
                rows.layers,
                units.len()
            );
        }
        Ok(())
    }

    /// The chunk plan of `splits` for this spec's `store.chunk_rows`.
    pub fn plan(&self, splits: &Splits) -> ChunkPlan {
        let word_level = self.loaded.spec.data.is_word_level();
        let rows: Vec<Vec<usize>> = splits
            .splits
            .iter()
            .map(|units| {
                units
                    .iter()
                    .map(|u| if word_level { u.words.len() } else { 1 })
                    .collect()
            })
            .collect();
        ChunkPlan::new(&rows, UNITS_PER_CALL, self.loaded.spec.store.chunk_rows)
    }

    /// Reuses a stored extraction with the same identity, or extracts the
    /// missing chunks (resuming an interrupted run) and stores them.
    pub fn extract_or_reuse(
        &self,
        store: &ActivationStore,
        manifest: Manifest,
        splits: &Splits,
        targets: &EncodedTargets,
    ) -> Result<Extraction> {
        if self.loaded.spec.store.reuse {
            if let Some(stored) = store.load(&manifest.key)? {
                info!("reusing activations from {}", stored.dir.display());
                return Ok(Extraction {
                    stored,
                    reused: true,
                });
            }
        }
        let plan = self.plan(splits);
        let pending = store.begin(&manifest.key)?;
        self.extract_chunks(&pending, &plan, manifest.columns(), splits, targets, None)?;
        let manifest = pending.finish(manifest, &plan)?;
        let stored = store
            .load(&manifest.key)?
            .ok_or_else(|| anyhow::anyhow!("the extraction just written cannot be read back"))?;
        Ok(Extraction {
            stored,
            reused: false,
        })
    }

    /// Extracts the planned chunks that are not on disk yet (only those of
    /// `shard`, if given), one chunk in memory at a time. Returns how many
    /// chunks were written.
    pub fn extract_chunks(
        &self,
        pending: &PendingExtraction,
        plan: &ChunkPlan,
        cols: usize,
        splits: &Splits,
        targets: &EncodedTargets,
        shard: Option<Shard>,
    ) -> Result<usize> {
        let dtype = self.loaded.spec.store.dtype;
        let mut written = 0;
        for (index, name) in SPLITS.iter().enumerate() {
            let mine: Vec<&PlannedChunk> = plan
                .split_chunks(index)
                .filter(|c| shard.is_none_or(|s| s.owns(c)))
                .collect();
            let todo: Vec<&PlannedChunk> = mine
                .iter()
                .copied()
                .filter(|c| pending.completed_chunk(c, cols).is_none())
                .collect();
            if todo.len() < mine.len() {
                info!(
                    "{name}: {} of {} chunks already on disk (interrupted run or another shard), extracting the rest",
                    mine.len() - todo.len(),
                    mine.len()
                );
            }
            let units: usize = todo.iter().map(|c| c.units.len()).sum();
            let progress = progress_bar(name, units);
            for planned in todo {
                self.extract_chunk(pending, planned, splits, targets, dtype, &progress)?;
                written += 1;
            }
            progress.finish_and_clear();
        }
        Ok(written)
    }

    fn extract_chunk(
        &self,
        pending: &PendingExtraction,
        planned: &PlannedChunk,
        splits: &Splits,
        targets: &EncodedTargets,
        dtype: StorageDtype,
        progress: &ProgressBar,
    ) -> Result<()> {
        let started = Instant::now();
        let units = &splits.splits[planned.split][planned.units.clone()];
        let rows = self.encode_units(units, progress)?;
        let seconds = started.elapsed().as_secs_f64();
        let first_row = planned.first_row;
        let chunk_targets =
            targets.splits[planned.split].slice(first_row..first_row + rows.rows as usize);
        let cols = rows.layers as usize * rows.hidden as usize;
        let arrays = ChunkArrays {
            activations: &rows.values,
            rows: rows.rows as usize,
            cols,
            targets: &chunk_targets,
            rows_per_unit: &rows.rows_per_unit,
            dtype,
        };
        let entry = ChunkEntry {
            file: String::new(),
            first_unit: 0,
            units: 0,
            rows: 0,
            subword_tokens: rows.subword_tokens,
            seconds,
            windowed_units: rows.windowed_units as u64,
        };
        pending.write_chunk(planned, &arrays, entry)?;
        info!(
            "{} chunk {}: {} rows, {} subword tokens in {seconds:.1} s ({:.0} tokens/s)",
            SPLITS[planned.split],
            planned.index,
            rows.rows,
            rows.subword_tokens,
            rows.subword_tokens as f64 / seconds.max(1e-9)
        );
        Ok(())
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(what: &str, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}
