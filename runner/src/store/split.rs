//! A stored split: its chunk files, read column subsets at a time.

use std::ops::Range;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::chunk_file::{ChunkFile, SplitTargets, StorageDtype};
use super::columns::Columns;
use super::manifest::SplitEntry;

/// A split read from disk: targets and row counts in memory, activations
/// left in the chunk files until a column subset is gathered.
pub struct StoredSplit {
    pub rows: usize,
    pub cols: usize,
    pub dtype: StorageDtype,
    pub targets: SplitTargets,
    pub rows_per_unit: Vec<u32>,
    chunks: Vec<ChunkFile>,
}

impl StoredSplit {
    /// Opens the chunks `entry` lists (relative to `dir`) and checks that
    /// they are the ones the manifest describes.
    pub fn open(dir: &Path, entry: &SplitEntry, cols: usize) -> Result<StoredSplit> {
        let mut chunks = Vec::with_capacity(entry.chunks.len());
        for listed in &entry.chunks {
            let chunk = ChunkFile::open(&dir.join(&listed.file), cols)?;
            if chunk.entry.first_unit != listed.first_unit || chunk.entry.rows != listed.rows {
                bail!(
                    "{} holds units from {} ({} rows), the manifest says from {} ({} rows)",
                    chunk.path.display(),
                    chunk.entry.first_unit,
                    chunk.entry.rows,
                    listed.first_unit,
                    listed.rows
                );
            }
            chunks.push(chunk);
        }
        let split = Self::from_chunks(chunks, cols)?;
        if split.rows != entry.rows || split.rows_per_unit.len() != entry.units {
            bail!(
                "{}: the '{}' chunks hold {} rows of {} units, the manifest says {} rows of {}",
                dir.display(),
                entry.name,
                split.rows,
                split.rows_per_unit.len(),
                entry.rows,
                entry.units
            );
        }
        Ok(split)
    }

    /// Joins chunks (in unit order) into one split.
    pub fn from_chunks(chunks: Vec<ChunkFile>, cols: usize) -> Result<StoredSplit> {
        let mut targets: Option<SplitTargets> = None;
        let mut rows_per_unit = Vec::new();
        let mut rows = 0;
        let dtype = chunks.first().map(|c| c.dtype).unwrap_or_default();
        for chunk in &chunks {
            if chunk.entry.first_unit != rows_per_unit.len() {
                bail!(
                    "{} starts at unit {}, expected {}: a chunk is missing",
                    chunk.path.display(),
                    chunk.entry.first_unit,
                    rows_per_unit.len()
                );
            }
            if chunk.dtype != dtype {
                bail!(
                    "{} is stored as {:?}, its neighbours as {dtype:?}",
                    chunk.path.display(),
                    chunk.dtype
                );
            }
            match &mut targets {
                Some(all) => all
                    .extend(chunk.targets.clone())
                    .with_context(|| chunk.path.display().to_string())?,
                None => targets = Some(chunk.targets.clone()),
            }
            rows_per_unit.extend_from_slice(&chunk.rows_per_unit);
            rows += chunk.rows;
        }
        Ok(StoredSplit {
            rows,
            cols,
            dtype,
            targets: targets.unwrap_or(SplitTargets::Labels(Vec::new())),
            rows_per_unit,
            chunks,
        })
    }

    /// Copies `columns` of every row into a row-major `[rows, columns]`
    /// f32 matrix, one chunk file mapped at a time.
    pub fn gather(&self, columns: &Columns) -> Result<Vec<f32>> {
        self.gather_rows(columns, 0..self.rows)
    }

    /// [`StoredSplit::gather`] of rows `rows` only: what a block of a
    /// streamed probe reads.
    pub fn gather_rows(&self, columns: &Columns, rows: Range<usize>) -> Result<Vec<f32>> {
        if rows.end > self.rows {
            bail!(
                "internal error: rows {rows:?} of a split of {} rows",
                self.rows
            );
        }
        let width = columns.len();
        let mut out = vec![0f32; rows.len() * width];
        if width == 0 {
            return Ok(out);
        }
        let mut chunk_start = 0;
        let mut rest = out.as_mut_slice();
        for chunk in &self.chunks {
            let chunk_rows = chunk_start..chunk_start + chunk.rows;
            chunk_start += chunk.rows;
            let first = rows.start.max(chunk_rows.start);
            let end = rows.end.min(chunk_rows.end);
            if first >= end {
                continue;
            }
            let (mine, later) = std::mem::take(&mut rest).split_at_mut((end - first) * width);
            rest = later;
            let offset = first - chunk_rows.start;
            chunk.with_rows(|data| {
                mine.par_chunks_mut(width)
                    .enumerate()
                    .for_each(|(i, dst)| match columns {
                        Columns::Range(r) => data.copy_range(offset + i, self.cols, r.clone(), dst),
                        Columns::List(list) => data.copy_columns(offset + i, self.cols, list, dst),
                    });
            })?;
        }
        Ok(out)
    }

    /// `columns` of the rows listed (ascending), e.g. a row sample.
    pub fn gather_row_list(&self, columns: &Columns, rows: &[usize]) -> Result<Vec<f32>> {
        let width = columns.len();
        let mut out = vec![0f32; rows.len() * width];
        let mut chunk_start = 0;
        let mut next = 0;
        for chunk in &self.chunks {
            let end = chunk_start + chunk.rows;
            let count = rows[next..].iter().take_while(|&&r| r < end).count();
            if count > 0 && width > 0 {
                let picked = &rows[next..next + count];
                let dst = &mut out[next * width..(next + count) * width];
                chunk.with_rows(|data| {
                    dst.par_chunks_mut(width)
                        .zip(picked.par_iter())
                        .for_each(|(d, &r)| match columns {
                            Columns::Range(range) => {
                                data.copy_range(r - chunk_start, self.cols, range.clone(), d)
                            }
                            Columns::List(list) => {
                                data.copy_columns(r - chunk_start, self.cols, list, d)
                            }
                        });
                })?;
            }
            next += count;
            chunk_start = end;
        }
        if next != rows.len() {
            bail!(
                "internal error: row list not ascending or beyond {} rows",
                self.rows
            );
        }
        Ok(out)
    }

    /// Every column of every row (small splits and tests).
    pub fn all_columns(&self) -> Result<Vec<f32>> {
        self.gather(&Columns::Range(0..self.cols))
    }
}
