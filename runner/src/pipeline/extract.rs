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
use crate::util::progress::{Advance, Step};

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
    pub fn encode_units(&self, units: &[Unit], progress: &impl Advance) -> Result<EncodedRows> {
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
        progress: &impl Advance,
        mut take: impl FnMut(EncodedRows),
    ) -> Result<()> {
        for chunk in units.chunks(UNITS_PER_CALL) {
            let request = self.request(chunk);
            let rows = self
                .plugin
                .check_result("encode", self.encoder.encode(&request))?;
            self.check_rows(chunk, &rows)?;
            take(rows);
            progress.advance(chunk.len() as u64);
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
        self.check_room(store, &manifest, splits)?;
        let plan = self.plan(splits);
        let pending = store.begin(&manifest.key)?;
        if self.loaded.spec.store.reuse && store.is_finished(&manifest.key) {
            // Another process finished this entry while we waited for it.
            drop(pending);
            if let Some(stored) = store.load(&manifest.key)? {
                info!("reusing activations from {}", stored.dir.display());
                return Ok(Extraction {
                    stored,
                    reused: true,
                });
            }
            bail!(
                "{} vanished while this run waited for it; run again",
                store.entry_dir(&manifest.key).display()
            );
        }
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

    /// Refuses, before any extraction, a store that cannot fit on its disk
    /// or a chunk that cannot fit in memory.
    pub fn check_room(
        &self,
        store: &ActivationStore,
        manifest: &Manifest,
        splits: &Splits,
    ) -> Result<()> {
        let word_level = self.loaded.spec.data.is_word_level();
        let rows: usize = (0..3).map(|s| splits.rows(s, word_level)).sum();
        let spec_store = &self.loaded.spec.store;
        let needs = super::resources::ExtractionNeeds::new(
            rows,
            manifest.columns(),
            spec_store.dtype.bytes(),
            spec_store.chunk_rows,
        );
        needs.check(
            store.dir(),
            super::resources::free_disk_bytes(store.dir()),
            super::resources::available_memory_mb(),
        )
    }

    /// Extracts the planned chunks that are not on disk yet (only those of
    /// `shard`, if given), one chunk in memory at a time, with one progress
    /// display over every split. Returns how many chunks were written.
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
        let todo: Vec<Vec<&PlannedChunk>> = (0..SPLITS.len())
            .map(|index| self.chunks_to_do(pending, plan, cols, index, shard))
            .collect();
        let units: usize = todo.iter().flatten().map(|c| c.units.len()).sum();
        let progress = Step::counted("extraction", units as u64, "sentences");
        let mut written = 0;
        for (chunks, name) in todo.iter().zip(SPLITS) {
            progress.set_message(name);
            for planned in chunks {
                self.extract_chunk(pending, planned, splits, targets, dtype, &progress)?;
                written += 1;
                die_if_asked_after(written);
            }
        }
        progress.finish();
        Ok(written)
    }

    /// The chunks of split `index` (of `shard`'s, if given) not on disk yet.
    fn chunks_to_do<'p>(
        &self,
        pending: &PendingExtraction,
        plan: &'p ChunkPlan,
        cols: usize,
        index: usize,
        shard: Option<Shard>,
    ) -> Vec<&'p PlannedChunk> {
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
                "{}: {} of {} chunks already on disk (interrupted run or another shard), extracting the rest",
                SPLITS[index],
                mine.len() - todo.len(),
                mine.len()
            );
        }
        todo
    }

    fn extract_chunk(
        &self,
        pending: &PendingExtraction,
        planned: &PlannedChunk,
        splits: &Splits,
        targets: &EncodedTargets,
        dtype: StorageDtype,
        progress: &Step,
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

/// A plain progress bar on stderr (hidden when stderr is not a terminal),
/// for `sieve bench`; runs report through [`Step`].
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

/// Test hook: with `SIEVE_TEST_DIE_AFTER_CHUNKS=N` the process aborts (no
/// cleanup, as if killed) right after writing its N-th chunk, so the
/// kill-and-resume test stops at a known point instead of racing a timer.
fn die_if_asked_after(written: usize) {
    let limit = std::env::var("SIEVE_TEST_DIE_AFTER_CHUNKS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if limit == Some(written) {
        eprintln!("SIEVE_TEST_DIE_AFTER_CHUNKS: stopping after chunk {written}");
        std::process::abort();
    }
}
