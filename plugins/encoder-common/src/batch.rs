//! Length-sorted, padded batches.
//!
//! Sequences are sorted by length (longest first, so that a batch that does
//! not fit in memory fails at once) and cut into batches of similar length,
//! which keeps padding, and so wasted work, small.

/// A batch of sequences padded to the longest one, row-major `[batch, seq_len]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddedBatch {
    pub input_ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding.
    pub attention_mask: Vec<u32>,
    pub batch: usize,
    pub seq_len: usize,
    /// Real (unpadded) length of each sequence.
    pub lengths: Vec<usize>,
    /// Positions (`[batch, seq_len]`, row-major) whose hidden state at the
    /// last requested layer is read; empty means all. A backend may skip
    /// the last layer's work elsewhere (those values are then unspecified):
    /// earlier layers feed attention and are always computed in full.
    pub needed: Vec<bool>,
}

impl PaddedBatch {
    /// Pads `(ids, type_ids)` pairs with `pad_id` (type 0, mask 0).
    pub fn new(sequences: &[(&[u32], &[u32])], pad_id: u32) -> Self {
        let batch = sequences.len();
        let seq_len = sequences
            .iter()
            .map(|(ids, _)| ids.len())
            .max()
            .unwrap_or(0);
        let mut padded = PaddedBatch {
            input_ids: vec![pad_id; batch * seq_len],
            type_ids: vec![0; batch * seq_len],
            attention_mask: vec![0; batch * seq_len],
            batch,
            seq_len,
            lengths: Vec::with_capacity(batch),
            needed: Vec::new(),
        };
        for (row, (ids, types)) in sequences.iter().enumerate() {
            let start = row * seq_len;
            padded.input_ids[start..start + ids.len()].copy_from_slice(ids);
            padded.type_ids[start..start + types.len()].copy_from_slice(types);
            padded.attention_mask[start..start + ids.len()].fill(1);
            padded.lengths.push(ids.len());
        }
        padded
    }

    /// Pads plain token id lists (all of token type 0).
    pub fn from_ids(sequences: &[Vec<u32>], pad_id: u32) -> Self {
        let zeros: Vec<Vec<u32>> = sequences.iter().map(|s| vec![0; s.len()]).collect();
        let pairs: Vec<(&[u32], &[u32])> = sequences
            .iter()
            .zip(&zeros)
            .map(|(s, z)| (s.as_slice(), z.as_slice()))
            .collect();
        Self::new(&pairs, pad_id)
    }

    /// Tokens that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// Whether the last layer's state at `position` of `sequence` is read.
    pub fn is_needed(&self, sequence: usize, position: usize) -> bool {
        self.needed.is_empty() || self.needed[sequence * self.seq_len + position]
    }
}

/// Groups sequence indices into batches: sorted by length (longest first),
/// at most `batch_size` sequences and, when `batch_tokens` is given, at most
/// that many padded tokens (`count * longest`) per batch, but never fewer
/// than one sequence.
pub fn plan_batches(
    lengths: &[usize],
    batch_size: usize,
    batch_tokens: Option<usize>,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let budget = batch_tokens.unwrap_or(usize::MAX);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for index in order {
        // Descending order: the batch's first sequence is its longest.
        let longest = current.first().map_or(lengths[index], |&i| lengths[i]);
        let full = current.len() >= batch_size.max(1)
            || (current.len() + 1).saturating_mul(longest) > budget;
        if full && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
        }
        current.push(index);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_length_sorted_and_capped_by_count() {
        let batches = plan_batches(&[3, 9, 1, 7, 5], 2, None);
        assert_eq!(batches, vec![vec![1, 3], vec![4, 0], vec![2]]);
    }

    #[test]
    fn token_budget_cuts_batches_of_long_sequences() {
        // Budget 20: two 9s fit (18), a third would not (27).
        let batches = plan_batches(&[9, 9, 9, 2, 2], 32, Some(20));
        assert_eq!(batches, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn a_sequence_over_the_budget_still_gets_a_batch() {
        assert_eq!(plan_batches(&[50, 4], 8, Some(10)), vec![vec![0], vec![1]]);
    }

    #[test]
    fn every_index_appears_once() {
        let lengths: Vec<usize> = (0..100).map(|i| (i * 37) % 23 + 1).collect();
        let mut seen: Vec<usize> = plan_batches(&lengths, 7, Some(60)).concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn padding_fills_ids_and_masks() {
        let batch = PaddedBatch::new(&[(&[5, 6, 7], &[0, 0, 1]), (&[8], &[0])], 0);
        assert_eq!((batch.batch, batch.seq_len), (2, 3));
        assert_eq!(batch.input_ids, vec![5, 6, 7, 8, 0, 0]);
        assert_eq!(batch.type_ids, vec![0, 0, 1, 0, 0, 0]);
        assert_eq!(batch.attention_mask, vec![1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.real_tokens(), 4);
    }
}
