//! How a split is cut into chunks, and which chunks a shard extracts.
//!
//! The plan depends only on the units (their row counts) and the chunk
//! size, never on timing, so an interrupted run, every shard of a cluster
//! job and the final merge agree on it without talking to each other.
//! Chunks end on multiples of the extractor's call size: the backend then
//! sees the same batches whether a split is extracted in one go, resumed or
//! sharded, and the activations are bit-identical.

use std::ops::Range;

use anyhow::{bail, Result};

/// One chunk to extract: units `units` of split `split` (0 train, 1 dev,
/// 2 test), the `index`-th chunk of that split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChunk {
    pub split: usize,
    pub index: usize,
    pub units: Range<usize>,
    /// Row of the split where the chunk starts.
    pub first_row: usize,
    pub rows: usize,
    /// Position among every chunk of every split (decides its shard).
    pub global_index: usize,
}

impl PlannedChunk {
    /// The chunk's file, relative to the extraction folder.
    pub fn file(&self, split_name: &str) -> String {
        format!("{split_name}/{:05}.safetensors", self.index)
    }
}

/// Chunks of all splits, in order.
#[derive(Debug, Clone)]
pub struct ChunkPlan {
    pub chunks: Vec<PlannedChunk>,
}

impl ChunkPlan {
    /// Cuts each split (given as rows per unit) into chunks of whole calls
    /// of `call_units` units, closing a chunk once it holds `chunk_rows`
    /// rows or more.
    pub fn new(rows_per_unit: &[Vec<usize>], call_units: usize, chunk_rows: usize) -> ChunkPlan {
        let call_units = call_units.max(1);
        let mut chunks = Vec::new();
        for (split, units) in rows_per_unit.iter().enumerate() {
            let mut index = 0;
            let mut start = 0;
            let mut first_row = 0;
            let mut rows = 0;
            for (call, block) in units.chunks(call_units).enumerate() {
                rows += block.iter().sum::<usize>();
                let end = (call * call_units + block.len()).min(units.len());
                if rows >= chunk_rows || end == units.len() {
                    chunks.push(PlannedChunk {
                        split,
                        index,
                        units: start..end,
                        first_row,
                        rows,
                        global_index: chunks.len(),
                    });
                    index += 1;
                    start = end;
                    first_row += rows;
                    rows = 0;
                }
            }
        }
        ChunkPlan { chunks }
    }

    /// The chunks of split `split`, in order.
    pub fn split_chunks(&self, split: usize) -> impl Iterator<Item = &PlannedChunk> {
        self.chunks.iter().filter(move |c| c.split == split)
    }
}

/// Part `index` of `count` of an extraction (`--shard 2/8`: 0-based index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` with 0 <= i < n.
    pub fn parse(text: &str) -> Result<Shard> {
        let parsed = text.split_once('/').and_then(|(i, n)| {
            Some(Shard {
                index: i.trim().parse().ok()?,
                count: n.trim().parse().ok()?,
            })
        });
        match parsed {
            Some(shard) if shard.count > 0 && shard.index < shard.count => Ok(shard),
            _ => bail!(
                "--shard '{text}' is not INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4 for the first of four; Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
            ),
        }
    }

    /// Whether this shard extracts `chunk`. Chunks are dealt round-robin,
    /// so every shard gets a share of every split.
    pub fn owns(&self, chunk: &PlannedChunk) -> bool {
        chunk.global_index % self.count == self.index
    }
}
