//! Per-token hidden states -> rows.

use crate::plan::RowTarget;

/// The hidden states of one batch, layer-major: one block of
/// `rows_per_layer * hidden` values per layer, in which sequence `i` starts
/// at row `starts[i]`.
///
/// Two layouts fit: padded (`[layers, batch, seq_len, hidden]`, what a
/// network with padded inputs returns) and packed (the real tokens of the
/// sequences back to back, no padding rows; what a backend that skips
/// padding in its dense layers returns).
#[derive(Clone, Debug, PartialEq)]
pub struct HiddenStates {
    pub values: Vec<f32>,
    pub layers: usize,
    pub hidden: usize,
    starts: Vec<usize>,
    rows_per_layer: usize,
}

impl HiddenStates {
    /// Padded layout `[layers, batch, seq_len, hidden]`.
    pub fn padded(
        values: Vec<f32>,
        layers: usize,
        batch: usize,
        seq_len: usize,
        hidden: usize,
    ) -> Result<Self, String> {
        let starts = (0..batch).map(|b| b * seq_len).collect();
        Self::checked(values, layers, hidden, starts, batch * seq_len)
    }

    /// Packed layout: per layer, the `lengths[i]` rows of each sequence in
    /// turn.
    pub fn packed(
        values: Vec<f32>,
        layers: usize,
        lengths: &[usize],
        hidden: usize,
    ) -> Result<Self, String> {
        let starts = lengths
            .iter()
            .scan(0, |next, &len| {
                let start = *next;
                *next += len;
                Some(start)
            })
            .collect();
        Self::checked(values, layers, hidden, starts, lengths.iter().sum())
    }

    fn checked(
        values: Vec<f32>,
        layers: usize,
        hidden: usize,
        starts: Vec<usize>,
        rows_per_layer: usize,
    ) -> Result<Self, String> {
        let expected = layers * rows_per_layer * hidden;
        if values.len() != expected {
            return Err(format!(
                "hidden states hold {} values, expected {layers} layers x {rows_per_layer} \
                 rows x {hidden}",
                values.len()
            ));
        }
        Ok(HiddenStates {
            values,
            layers,
            hidden,
            starts,
            rows_per_layer,
        })
    }

    /// Number of sequences.
    pub fn sequences(&self) -> usize {
        self.starts.len()
    }

    /// Rows available to sequence `i` (its length, or the padded length).
    pub fn capacity(&self, sequence: usize) -> usize {
        let end = self
            .starts
            .get(sequence + 1)
            .copied()
            .unwrap_or(self.rows_per_layer);
        end - self.starts[sequence]
    }

    /// The vector of one token at one layer.
    /// The values, for the caller to reuse as the next batch's buffer.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    pub fn vector(&self, layer: usize, sequence: usize, position: usize) -> &[f32] {
        let row = layer * self.rows_per_layer + self.starts[sequence] + position;
        &self.values[row * self.hidden..(row + 1) * self.hidden]
    }
}

/// Sums token vectors into rows and divides by their counts at the end, so
/// that first / last / average subword, `[CLS]` and mean pooling, and
/// pooling across windows, are all one operation.
pub struct RowAccumulator {
    sums: Vec<f32>,
    counts: Vec<u32>,
    layers: usize,
    hidden: usize,
}

impl RowAccumulator {
    pub fn new(rows: usize, layers: usize, hidden: usize) -> Self {
        // Zeros written, not `vec![0.0; n]`: that is calloc, whose fresh
        // pages map the shared zero page, so the first `+=` reads it and
        // the write then faults again and flushes every thread's TLB.
        let mut sums = Vec::with_capacity(rows * layers * hidden);
        sums.resize(rows * layers * hidden, 0.0);
        RowAccumulator {
            sums,
            counts: vec![0; rows],
            layers,
            hidden,
        }
    }

    /// Adds the vectors at `target.positions` of batch sequence `sequence`
    /// to `target.row`, at every layer.
    pub fn add(
        &mut self,
        states: &HiddenStates,
        sequence: usize,
        target: &RowTarget,
    ) -> Result<(), String> {
        if states.layers != self.layers || states.hidden != self.hidden {
            return Err(format!(
                "the backend returned {} layers x {} hidden, expected {} x {}",
                states.layers, states.hidden, self.layers, self.hidden
            ));
        }
        let row_size = self.layers * self.hidden;
        let row = &mut self.sums[target.row * row_size..(target.row + 1) * row_size];
        for (layer, out) in row.chunks_exact_mut(self.hidden).enumerate() {
            for position in target.positions.clone() {
                let vector = states.vector(layer, sequence, position);
                out.iter_mut().zip(vector).for_each(|(o, v)| *o += v);
            }
        }
        self.counts[target.row] += target.positions.len() as u32;
        Ok(())
    }

    /// The pooled rows, `[rows, layers, hidden]`; fails if a row received no
    /// vector (a planning bug, never silently a zero row).
    pub fn finish(mut self) -> Result<Vec<f32>, String> {
        let row_size = self.layers * self.hidden;
        for (row, &count) in self.counts.iter().enumerate() {
            if count == 0 {
                return Err(format!(
                    "internal error: row {row} received no hidden state"
                ));
            }
            if count > 1 {
                let scale = 1.0 / count as f32;
                let values = &mut self.sums[row * row_size..(row + 1) * row_size];
                values.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Ok(self.sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 layers, 1 sequence, 3 positions, hidden 2: value = 100*layer + 10*pos + dim.
    fn states() -> HiddenStates {
        let mut values = Vec::new();
        for layer in 0..2 {
            for pos in 0..3 {
                for dim in 0..2 {
                    values.push((100 * layer + 10 * pos + dim) as f32);
                }
            }
        }
        HiddenStates::padded(values, 2, 1, 3, 2).expect("shape")
    }

    #[test]
    fn single_positions_are_copied_and_spans_averaged() {
        let s = states();
        let mut acc = RowAccumulator::new(2, 2, 2);
        acc.add(
            &s,
            0,
            &RowTarget {
                row: 0,
                positions: 2..3,
            },
        )
        .expect("add");
        acc.add(
            &s,
            0,
            &RowTarget {
                row: 1,
                positions: 0..2,
            },
        )
        .expect("add");
        let rows = acc.finish().expect("rows");
        assert_eq!(rows[..4], [20.0, 21.0, 120.0, 121.0]);
        assert_eq!(rows[4..], [5.0, 6.0, 105.0, 106.0]);
    }

    #[test]
    fn targets_of_one_row_pool_together() {
        let s = states();
        let mut acc = RowAccumulator::new(1, 2, 2);
        acc.add(
            &s,
            0,
            &RowTarget {
                row: 0,
                positions: 0..1,
            },
        )
        .expect("add");
        acc.add(
            &s,
            0,
            &RowTarget {
                row: 0,
                positions: 1..3,
            },
        )
        .expect("add");
        assert_eq!(acc.finish().expect("rows")[..2], [10.0, 11.0]);
    }

    #[test]
    fn packed_states_find_each_sequence() {
        // 2 layers; sequences of 1 and 2 tokens; hidden 1: value = 10*layer + row.
        let values = vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        let states = HiddenStates::packed(values, 2, &[1, 2], 1).expect("shape");
        assert_eq!(states.vector(1, 1, 1), [12.0]);
        assert_eq!(states.vector(0, 1, 0), [1.0]);
        assert_eq!((states.capacity(0), states.capacity(1)), (1, 2));
    }

    #[test]
    fn an_empty_row_is_an_error() {
        assert!(RowAccumulator::new(1, 2, 2).finish().is_err());
    }

    #[test]
    fn wrong_sizes_are_rejected() {
        assert!(HiddenStates::padded(vec![0.0; 5], 1, 1, 1, 4).is_err());
        assert!(HiddenStates::packed(vec![0.0; 8], 1, &[1, 2], 2).is_err());
        let mut acc = RowAccumulator::new(1, 3, 2);
        assert!(acc
            .add(
                &states(),
                0,
                &RowTarget {
                    row: 0,
                    positions: 0..1
                }
            )
            .is_err());
    }
}
