//! The generic encode loop: plan, batch, run the backend's forward pass,
//! pool into rows.

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
}

/// Encodes a request with a backend's forward pass.
///
/// `forward(batch, last_layer)` must return hidden states `0..=last_layer`
/// of every token of the padded batch. Rows come back in unit order whatever
/// order the batches ran in. `subword_tokens` counts the real tokens of all
/// sequences with specials and padding excluded (the core contract).
pub fn encode_request<F>(
    request: &EncodeRequest,
    tokenizer: &TokenizerBundle,
    limits: &EncodeLimits,
    mut forward: F,
) -> Result<EncodedRows, String>
where
    F: FnMut(&PaddedBatch, usize) -> Result<HiddenStates, String>,
{
    let last_layer = request.last_layer as usize;
    check_request(request, limits)?;
    let plan = build_plan(request, tokenizer, limits.max_positions)?;
    let layers = last_layer + 1;
    let mut rows = RowAccumulator::new(plan.rows, layers, limits.hidden_size);
    let lengths: Vec<usize> = plan.sequences.iter().map(Sequence::len).collect();
    let batches = plan_batches(&lengths, request.batch_size as usize, limits.batch_tokens);
    let pad = tokenizer.special_ids().pad;
    for members in batches {
        let sequences: Vec<&Sequence> = members.iter().map(|&i| &plan.sequences[i]).collect();
        let batch = pad_sequences(&sequences, pad);
        let states = forward(&batch, last_layer)?;
        check_states(&states, &batch, layers)?;
        for (slot, sequence) in sequences.iter().enumerate() {
            for target in &sequence.targets {
                rows.add(&states, slot, target)?;
            }
        }
    }
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

fn pad_sequences(sequences: &[&Sequence], pad: u32) -> PaddedBatch {
    let pairs: Vec<(&[u32], &[u32])> = sequences
        .iter()
        .map(|s| (s.ids.as_slice(), s.type_ids.as_slice()))
        .collect();
    PaddedBatch::new(&pairs, pad)
}

fn check_states(states: &HiddenStates, batch: &PaddedBatch, layers: usize) -> Result<(), String> {
    let got = (states.layers, states.batch, states.seq_len);
    let want = (layers, batch.batch, batch.seq_len);
    if got != want {
        return Err(format!(
            "the backend returned hidden states of shape (layers, batch, seq) {got:?}, \
             expected {want:?}"
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
    /// `[id + 1000 * l, position]`, so pooled rows can be checked by hand.
    fn fake_forward(batch: &PaddedBatch, last_layer: usize) -> Result<HiddenStates, String> {
        let mut values = Vec::new();
        for layer in 0..=last_layer {
            for b in 0..batch.batch {
                for p in 0..batch.seq_len {
                    let token = batch.input_ids[b * batch.seq_len + p];
                    values.extend([(token as usize + 1000 * layer) as f32, p as f32]);
                }
            }
        }
        HiddenStates::new(values, last_layer + 1, batch.batch, batch.seq_len, HIDDEN)
    }

    fn limits(max_positions: usize) -> EncodeLimits {
        EncodeLimits {
            max_positions,
            num_layers: 3,
            hidden_size: HIDDEN,
            batch_tokens: None,
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
        let short = |b: &PaddedBatch, _| fake_forward(b, 0);
        let message = encode_request(&request, &bundle(), &limits(512), short)
            .err()
            .expect("error");
        assert!(message.contains("expected (2, 1, 3)"), "{message}");
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
