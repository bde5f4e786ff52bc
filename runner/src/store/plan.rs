//! How a split is cut into chunks, and which chunks a shard extracts.
//!
//! The plan depends only on the units (their row counts) and the chunk
//! size, never on timing, so an interrupted run, every shard of a cluster
//! job and the final merge agree on it without talking to each other.
//!
//! A chunk holds at most `chunk_rows` rows; only a unit (a sentence) that
//! is longer on its own makes a bigger chunk, of that unit alone, since a
//! unit's rows are never split. Within that limit a chunk is made of whole
//! calls of the extractor (`call_units` units, from the start of the
//! split): the backend then sees the same batches whether a split is
//! extracted in one go, resumed or sharded, and whatever `chunk_rows` is,
//! so the activations are bit-identical. Only a call with more rows than
//! `chunk_rows` is cut between chunks (the chunk ends with the call), and
//! its units are then batched by the chunk.

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
    /// Cuts each split (given as rows per unit) into chunks of at most
    /// `chunk_rows` rows, made of whole calls of `call_units` units where
    /// a call fits (see the module's notes).
    pub fn new(rows_per_unit: &[Vec<usize>], call_units: usize, chunk_rows: usize) -> ChunkPlan {
        let call_units = call_units.max(1);
        let mut chunks = Vec::new();
        for (split, units) in rows_per_unit.iter().enumerate() {
            let mut cutter = Cutter::new(split, &mut chunks);
            for (call, block) in units.chunks(call_units).enumerate() {
                let block_start = call * call_units;
                let block_rows: usize = block.iter().sum();
                if cutter.rows + block_rows > chunk_rows {
                    cutter.close(block_start);
                }
                if block_rows <= chunk_rows {
                    cutter.rows += block_rows;
                    continue;
                }
                // A call too big for one chunk: cut it between units, and
                // end the last piece with the call so that later chunks
                // start on a call again.
                for (i, &rows) in block.iter().enumerate() {
                    if cutter.rows + rows > chunk_rows {
                        cutter.close(block_start + i);
                    }
                    cutter.rows += rows;
                }
                cutter.close(block_start + block.len());
            }
            cutter.close(units.len());
        }
        ChunkPlan { chunks }
    }

    /// The chunks of split `split`, in order.
    pub fn split_chunks(&self, split: usize) -> impl Iterator<Item = &PlannedChunk> {
        self.chunks.iter().filter(move |c| c.split == split)
    }
}

/// The open chunk of one split while [`ChunkPlan::new`] walks its units.
struct Cutter<'a> {
    split: usize,
    chunks: &'a mut Vec<PlannedChunk>,
    index: usize,
    /// First unit and first row of the open chunk, and its rows so far.
    start: usize,
    first_row: usize,
    rows: usize,
}

impl<'a> Cutter<'a> {
    fn new(split: usize, chunks: &'a mut Vec<PlannedChunk>) -> Self {
        Cutter {
            split,
            chunks,
            index: 0,
            start: 0,
            first_row: 0,
            rows: 0,
        }
    }

    /// Ends the open chunk before unit `end` (nothing if it holds no unit).
    fn close(&mut self, end: usize) {
        if end <= self.start {
            return;
        }
        let global_index = self.chunks.len();
        self.chunks.push(PlannedChunk {
            split: self.split,
            index: self.index,
            units: self.start..end,
            first_row: self.first_row,
            rows: self.rows,
            global_index,
        });
        self.index += 1;
        self.start = end;
        self.first_row += self.rows;
        self.rows = 0;
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

#[cfg(test)]
mod tests {
    use super::ChunkPlan;

    fn chunk_rows(plan: &ChunkPlan, split: usize) -> Vec<usize> {
        plan.split_chunks(split).map(|c| c.rows).collect()
    }

    /// `chunk_rows: 1000` once gave chunks of 6,650 rows: every chunk was
    /// at least one whole call of 256 sentences.
    #[test]
    fn chunks_never_exceed_chunk_rows_when_calls_are_bigger() {
        // 600 sentences of 26 words: a call of 256 holds 6,656 rows.
        let units = vec![vec![26; 600]];
        let plan = ChunkPlan::new(&units, 256, 1000);
        let rows = chunk_rows(&plan, 0);
        assert!(rows.iter().all(|&r| r <= 1000), "{rows:?}");
        assert_eq!(rows.iter().sum::<usize>(), 600 * 26);
        // 38 sentences fill 988 rows; each call ends its last chunk.
        assert_eq!(rows[0], 988);
        let units: Vec<_> = plan.split_chunks(0).map(|c| c.units.clone()).collect();
        assert!(units.iter().any(|u| u.end == 256) && units.iter().any(|u| u.start == 256));
    }

    #[test]
    fn whole_calls_are_kept_together_when_they_fit() {
        // Calls of 4 units of 10 rows (40 rows); chunks of at most 100 rows
        // hold two whole calls.
        let units = vec![vec![10; 20]];
        let plan = ChunkPlan::new(&units, 4, 100);
        let ranges: Vec<_> = plan.split_chunks(0).map(|c| c.units.clone()).collect();
        assert_eq!(ranges, vec![0..8, 8..16, 16..20]);
        let firsts: Vec<usize> = plan.split_chunks(0).map(|c| c.first_row).collect();
        assert_eq!(firsts, vec![0, 80, 160]);
    }

    #[test]
    fn a_unit_longer_than_chunk_rows_is_a_chunk_of_its_own() {
        let units = vec![vec![3, 50, 3, 3], vec![], vec![7]];
        let plan = ChunkPlan::new(&units, 256, 10);
        let ranges: Vec<_> = plan.split_chunks(0).map(|c| c.units.clone()).collect();
        assert_eq!(ranges, vec![0..1, 1..2, 2..4]);
        assert_eq!(chunk_rows(&plan, 0), vec![3, 50, 6]);
        assert_eq!(plan.split_chunks(1).count(), 0);
        assert_eq!(chunk_rows(&plan, 2), vec![7]);
        let globals: Vec<usize> = plan.chunks.iter().map(|c| c.global_index).collect();
        assert_eq!(globals, vec![0, 1, 2, 3]);
    }
}
