//! The generic encode loop: plan, batch, run the backend's forward pass,
//! pool into rows.

use std::sync::Mutex;

use rayon::prelude::*;
use sieve_core::{EncodeRequest, EncodedRows};

use crate::batch::{plan_batches, PaddedBatch};
use crate::plan::{build_plan, Sequence};
use crate::pooling::{HiddenStates, RowAccumulator};
use crate::tokenize::TokenizerBundle;

/// What the driver must know about the model and how to batch for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeLimits {
    /// Longest sequence the model takes, specials included.
    pub max_positions: usize,
    /// Encoder layers K (hidden states 0..=K exist).
    pub num_layers: usize,
    pub hidden_size: usize,
    /// Most padded tokens per batch, on top of the request's `batch_size`;
    /// bounds the attention matrices' memory for long sequences.
    pub batch_tokens: Option<usize>,
    /// Batches whose forward passes run at the same time on rayon's pool
    /// (1: one after the other). A multi-threaded forward pass leaves
    /// threads idle at every fork-join; a second batch fills those gaps.
    pub concurrent_batches: usize,
}

/// Encodes a request with a backend's forward pass.
///
/// `forward(batch, last_layer, buffer)` must return hidden states `0..=last_layer`
/// of every real token of the batch (padded or packed layout; padding rows
/// are never read, nor last-layer positions the batch does not mark as
/// needed). It may be called from several threads at once (see
/// [`EncodeLimits::concurrent_batches`]; a backend whose session needs
/// exclusive access locks it or asks for 1). Rows come back in unit order
/// whatever order the batches ran in. `subword_tokens` counts the real
/// tokens of all sequences, specials and padding excluded (the core
/// contract).
///
/// `buffer` is an empty vector, recycled from an earlier batch of the
/// request, that a backend which copies its output may fill and hand back
/// inside the [`HiddenStates`]: a batch's states are megabytes, and a fresh
/// allocation of that size is a fresh `mmap` whose first touch faults page
/// by page and whose release flushes the TLB of every thread (ONNX
/// Runtime's pool included) — measured at 4% of the ONNX pass.
pub fn encode_request<F>(
    request: &EncodeRequest,
    tokenizer: &TokenizerBundle,
    limits: &EncodeLimits,
    forward: F,
) -> Result<EncodedRows, String>
where
    F: Fn(&PaddedBatch, usize, Vec<f32>) -> Result<HiddenStates, String> + Sync,
{
    check_request(request, limits)?;
    let plan = build_plan(request, tokenizer, limits.max_positions)?;
    let layers = request.last_layer as usize + 1;
    let lengths: Vec<usize> = plan.sequences.iter().map(Sequence::len).collect();
    let batches = plan_batches(&lengths, request.batch_size as usize, limits.batch_tokens);
    let pooled = Mutex::new(RowAccumulator::new(plan.rows, layers, limits.hidden_size));
    let pad = tokenizer.special_ids().pad;
    let spare = BufferPool::default();
    let run = |members: &Vec<usize>| {
        let sequences: Vec<&Sequence> = members.iter().map(|&i| &plan.sequences[i]).collect();
        encode_batch(&sequences, pad, layers, &forward, &pooled, &spare)
    };
    for group in batches.chunks(limits.concurrent_batches.max(1)) {
        if let [batch] = group {
            // On this thread: handing a lone batch to rayon's pool would
            // wake its idle workers, which spin on the cores the backend's
            // own threads (ONNX Runtime's pool) are computing on.
            run(batch)?;
            continue;
        }
        let results: Vec<Result<(), String>> = group.par_iter().map(run).collect();
        results.into_iter().collect::<Result<(), String>>()?;
    }
    let rows = pooled.into_inner().map_err(|_| POISONED.to_string())?;
    Ok(EncodedRows {
        values: rows.finish()?.into(),
        rows: plan.rows as u64,
        layers: layers as u32,
        hidden: limits.hidden_size as u32,
        rows_per_unit: plan.rows_per_unit.into(),
        subword_tokens: plan.subword_tokens,
        windowed_units: plan.windowed_units,
    })
}

const POISONED: &str = "a forward pass panicked while pooling rows";

/// Output buffers of finished batches, for the next ones to reuse.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<f32>>>);

impl BufferPool {
    fn take(&self) -> Vec<f32> {
        let mut buffer = self
            .0
            .lock()
            .ok()
            .and_then(|mut b| b.pop())
            .unwrap_or_default();
        buffer.clear();
        buffer
    }

    fn give(&self, buffer: Vec<f32>) {
        if let Ok(mut buffers) = self.0.lock() {
            buffers.push(buffer);
        }
    }
}

/// One batch: pad, forward, then pool its rows at once, under the lock,
/// while the other batch of its group may still be computing.
fn encode_batch<F>(
    sequences: &[&Sequence],
    pad: u32,
    layers: usize,
    forward: &F,
    pooled: &Mutex<RowAccumulator>,
    spare: &BufferPool,
) -> Result<(), String>
where
    F: Fn(&PaddedBatch, usize, Vec<f32>) -> Result<HiddenStates, String>,
{
    let batch = pad_sequences(sequences, pad);
    let states = forward(&batch, layers - 1, spare.take())?;
    check_states(&states, &batch, layers)?;
    let mut rows = pooled.lock().map_err(|_| POISONED.to_string())?;
    for (slot, sequence) in sequences.iter().enumerate() {
        for target in &sequence.targets {
            rows.add(&states, slot, target)?;
        }
    }
    drop(rows);
    spare.give(states.into_values());
    Ok(())
}

fn check_request(request: &EncodeRequest, limits: &EncodeLimits) -> Result<(), String> {
    if request.last_layer as usize > limits.num_layers {
        return Err(format!(
            "last_layer {} asked of a model with {} layers (hidden states 0..={})",
            request.last_layer, limits.num_layers, limits.num_layers
        ));
    }
    if request.batch_size == 0 {
        return Err("batch_size must be at least 1".into());
    }
    Ok(())
}

/// Pads the sequences and marks the positions their rows read.
fn pad_sequences(sequences: &[&Sequence], pad: u32) -> PaddedBatch {
    let pairs: Vec<(&[u32], &[u32])> = sequences
        .iter()
        .map(|s| (s.ids.as_slice(), s.type_ids.as_slice()))
        .collect();
    let mut batch = PaddedBatch::new(&pairs, pad);
    let mut needed = vec![false; batch.batch * batch.seq_len];
    for (slot, sequence) in sequences.iter().enumerate() {
        let row = slot * batch.seq_len;
        for target in &sequence.targets {
            needed[row + target.positions.start..row + target.positions.end].fill(true);
        }
    }
    batch.needed = needed;
    batch
}

fn check_states(states: &HiddenStates, batch: &PaddedBatch, layers: usize) -> Result<(), String> {
    let got = (states.layers, states.sequences());
    let want = (layers, batch.batch);
    if got != want {
        return Err(format!(
            "the backend returned hidden states of (layers, sequences) {got:?}, expected {want:?}"
        ));
    }
    let short = (0..batch.batch).find(|&i| states.capacity(i) < batch.lengths[i]);
    if let Some(i) = short {
        return Err(format!(
            "the backend returned {} rows for sequence {i} of {} tokens",
            states.capacity(i),
            batch.lengths[i]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tests::{bundle, id};
    use sieve_core::abi_stable::std_types::RVec;
    use sieve_core::{RowLevel, SentencePooling, SubwordPooling, TextUnit};

    const HIDDEN: usize = 2;

    /// A fake network: the vector of a token at layer l is
    /// `[id + 1000 * l, position]`, so pooled rows can be checked by hand;
    /// like a pruning backend, it leaves NaN at last-layer positions the
    /// batch does not mark as needed.
    fn fake_forward(
        batch: &PaddedBatch,
        last_layer: usize,
        mut values: Vec<f32>,
    ) -> Result<HiddenStates, String> {
        for layer in 0..=last_layer {
            for b in 0..batch.batch {
                for p in 0..batch.seq_len {
                    let token = batch.input_ids[b * batch.seq_len + p];
                    let skipped = layer == last_layer && !batch.is_needed(b, p);
                    let value = if skipped {
                        f32::NAN
                    } else {
                        (token as usize + 1000 * layer) as f32
                    };
                    values.extend([value, p as f32]);
                }
            }
        }
        HiddenStates::padded(values, last_layer + 1, batch.batch, batch.seq_len, HIDDEN)
    }

    fn limits(max_positions: usize) -> EncodeLimits {
        EncodeLimits {
            max_positions,
            num_layers: 3,
            hidden_size: HIDDEN,
            batch_tokens: None,
            concurrent_batches: 2,
        }
    }

    fn word_request(units: Vec<TextUnit>, last_layer: u32) -> EncodeRequest {
        EncodeRequest {
            units: RVec::from(units),
            level: RowLevel::Word,
            subword_pooling: SubwordPooling::Last,
            sentence_pooling: SentencePooling::Cls,
            last_layer,
            batch_size: 2,
        }
    }

    #[test]
    fn rows_follow_unit_order_across_sorted_batches() {
        let units = vec![
            TextUnit::words(&["a"]),
            TextUnit::words(&["the", "cat", "sat", "on", "the", "mat"]),
            TextUnit::words(&["cats", "sat"]),
        ];
        let out = encode_request(
            &word_request(units, 1),
            &bundle(),
            &limits(512),
            fake_forward,
        )
        .expect("encode");
        assert_eq!(out.rows, 9);
        assert_eq!(out.rows_per_unit.as_slice(), &[1, 6, 2]);
        assert_eq!((out.layers, out.hidden), (2, 2));
        // Row 0 is "a" at layer 0, position 1.
        assert_eq!(out.values[..2], [id("a") as f32, 1.0]);
        // Row 7 is "cats": last subword "##s" at position 2; layer 1 follows.
        let row7 = &out.values[7 * 4..8 * 4];
        assert_eq!(
            row7,
            [id("##s") as f32, 2.0, (id("##s") + 1000) as f32, 2.0]
        );
        assert_eq!(out.subword_tokens, 10);
        assert_eq!(out.windowed_units, 0);
        assert!(
            out.values.iter().all(|v| v.is_finite()),
            "a row read an unneeded position"
        );
    }

    #[test]
    fn concurrent_and_sequential_batches_agree() {
        let units: Vec<TextUnit> = (0..7)
            .map(|i| TextUnit::words(&["the", "cat", "sat", "on", "a", "mat"][..1 + i % 6]))
            .collect();
        let request = word_request(units, 2);
        let mut one_at_a_time = limits(512);
        one_at_a_time.concurrent_batches = 1;
        let a = encode_request(&request, &bundle(), &one_at_a_time, fake_forward).expect("encode");
        let b = encode_request(&request, &bundle(), &limits(512), fake_forward).expect("encode");
        assert_eq!(a.values, b.values);
        assert_eq!(a.rows_per_unit, b.rows_per_unit);
    }

    #[test]
    fn windowed_words_keep_their_rows() {
        let words = ["the", "cat", "sat", "on", "the", "mat", "a"];
        let out = encode_request(
            &word_request(vec![TextUnit::words(&words)], 0),
            &bundle(),
            &limits(5),
            fake_forward,
        )
        .expect("encode");
        assert_eq!(out.rows, 7);
        assert_eq!(out.windowed_units, 1);
        let firsts: Vec<f32> = out.values.chunks(2).map(|v| v[0]).collect();
        let expected: Vec<f32> = words.iter().map(|w| id(w) as f32).collect();
        assert_eq!(firsts, expected);
        // Positions restart in every window of 3 words.
        let positions: Vec<f32> = out.values.chunks(2).map(|v| v[1]).collect();
        assert_eq!(positions, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]);
    }

    #[test]
    fn sentence_mean_pools_across_windows() {
        let mut request = word_request(vec![TextUnit::sentence("the cat sat on", None)], 0);
        request.level = RowLevel::Sentence;
        request.sentence_pooling = SentencePooling::Mean;
        let out = encode_request(&request, &bundle(), &limits(4), fake_forward).expect("encode");
        assert_eq!(out.rows, 1);
        let mean_id = ["the", "cat", "sat", "on"]
            .map(|t| id(t) as f32)
            .iter()
            .sum::<f32>()
            / 4.0;
        assert_eq!(out.values.as_slice(), [mean_id, 1.5]);
        assert_eq!(out.windowed_units, 1);
    }

    #[test]
    fn a_bad_last_layer_or_backend_shape_is_an_error() {
        let request = word_request(vec![TextUnit::words(&["a"])], 4);
        assert!(encode_request(&request, &bundle(), &limits(512), fake_forward).is_err());
        let request = word_request(vec![TextUnit::words(&["a"])], 1);
        let short = |b: &PaddedBatch, _, buffer| fake_forward(b, 0, buffer);
        let message = encode_request(&request, &bundle(), &limits(512), short).expect_err("error");
        assert!(message.contains("expected (2, 1)"), "{message}");
    }

    #[test]
    fn no_units_give_no_rows() {
        let out = encode_request(
            &word_request(vec![], 2),
            &bundle(),
            &limits(512),
            fake_forward,
        )
        .expect("encode");
        assert_eq!((out.rows, out.layers, out.values.len()), (0, 3, 0));
    }
}
