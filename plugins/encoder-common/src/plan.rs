//! Text units -> token sequences, and which token positions make each row.
//!
//! Every sequence is laid out BERT-style: `[CLS] a [SEP]` or
//! `[CLS] a [SEP] b [SEP]` (token type 0 for the first segment and its
//! specials, 1 for the pair segment). A unit longer than the model's maximum
//! is cut into windows that each get their own specials: word units at word
//! boundaries, single sentences anywhere (their windows are pooled into one
//! row). A sentence pair that is too long is an error: cutting it would
//! change what the pair means.

use std::ops::Range;

use rayon::prelude::*;
use sieve_core::{EncodeRequest, RowLevel, SentencePooling, SubwordPooling, TextUnit};

use crate::tokenize::{SpecialIds, TokenizerBundle};

/// Token positions of a sequence whose hidden states are summed into a row.
///
/// A row is the mean of every vector summed into it, over all its targets:
/// a word's first / last subword or all of them, a sentence's `[CLS]` (one
/// per window) or all its non-special tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowTarget {
    pub row: usize,
    pub positions: Range<usize>,
}

/// One sequence fed to the network, specials included, unpadded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub targets: Vec<RowTarget>,
}

impl Sequence {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Everything [`crate::encode_request`] runs through the network.
#[derive(Clone, Debug, Default)]
pub struct EncodePlan {
    pub sequences: Vec<Sequence>,
    /// Rows of each unit: its word count, or 1 for a sentence.
    pub rows_per_unit: Vec<u32>,
    pub rows: usize,
    /// Units cut into more than one window.
    pub windowed_units: u32,
    /// Subword tokens over all sequences, specials excluded.
    pub subword_tokens: u64,
}

/// Builds the sequences for a request. `max_positions` is the longest
/// sequence the model takes, specials included.
pub fn build_plan(
    request: &EncodeRequest,
    tokenizer: &TokenizerBundle,
    max_positions: usize,
) -> Result<EncodePlan, String> {
    if max_positions < 3 {
        return Err(format!(
            "a model maximum of {max_positions} positions cannot hold any text"
        ));
    }
    // Units are tokenised in parallel, each with rows counted from 0, and
    // then put in order.
    let units: Vec<Result<(Vec<Sequence>, usize), String>> = request
        .units
        .as_slice()
        .par_iter()
        .enumerate()
        .map(|(index, unit)| plan_unit(index, unit, request, tokenizer, max_positions))
        .collect();
    let mut plan = EncodePlan::default();
    for unit in units {
        let (mut sequences, rows) = unit?;
        if sequences.len() > 1 {
            plan.windowed_units += 1;
        }
        for target in sequences.iter_mut().flat_map(|s| s.targets.iter_mut()) {
            target.row += plan.rows;
        }
        plan.sequences.extend(sequences);
        plan.rows_per_unit.push(rows as u32);
        plan.rows += rows;
    }
    plan.subword_tokens = plan
        .sequences
        .iter()
        .map(|s| s.len() as u64 - count_specials(s))
        .sum();
    Ok(plan)
}

/// One unit's sequences, with its rows counted from 0, and its row count.
fn plan_unit(
    index: usize,
    unit: &TextUnit,
    request: &EncodeRequest,
    tokenizer: &TokenizerBundle,
    max_positions: usize,
) -> Result<(Vec<Sequence>, usize), String> {
    let mut sequences = Vec::new();
    let rows = match request.level {
        RowLevel::Word => plan_word_unit(
            index,
            unit,
            request,
            tokenizer,
            max_positions,
            &mut sequences,
        )?,
        RowLevel::Sentence => plan_sentence_unit(
            index,
            unit,
            request,
            tokenizer,
            max_positions,
            &mut sequences,
        )?,
    };
    Ok((sequences, rows))
}

/// Specials of a sequence: `[CLS]` and one `[SEP]` per segment.
fn count_specials(sequence: &Sequence) -> u64 {
    let pair = sequence.type_ids.last().is_some_and(|&t| t != 0);
    if pair {
        3
    } else {
        2
    }
}

/// Which positions of a word's subword span give its row.
fn select_subwords(span: Range<usize>, pooling: SubwordPooling) -> Range<usize> {
    match pooling {
        SubwordPooling::First => span.start..span.start + 1,
        SubwordPooling::Last => span.end - 1..span.end,
        SubwordPooling::Average => span,
    }
}

/// A word unit's sequences (rows = its words, counted from 0), windowed at
/// word boundaries when too long.
fn plan_word_unit(
    index: usize,
    unit: &TextUnit,
    request: &EncodeRequest,
    tokenizer: &TokenizerBundle,
    max_positions: usize,
    out: &mut Vec<Sequence>,
) -> Result<usize, String> {
    if unit.words.is_empty() && !unit.text.is_empty() {
        return Err(format!(
            "unit {index}: word-level rows need pre-split words, but the unit only has text"
        ));
    }
    let pieces = tokenizer.word_pieces(&unit.words)?;
    let capacity = max_positions - 2;
    if let Some((word, p)) = pieces.iter().enumerate().find(|(_, p)| p.len() > capacity) {
        return Err(format!(
            "unit {index}: word {word} ('{}') has {} subwords, more than the model's {capacity}",
            unit.words[word],
            p.len()
        ));
    }
    let special = tokenizer.special_ids();
    let mut first_word = 0;
    for window in word_windows(&pieces, capacity) {
        let sequence = word_window_sequence(
            &pieces[window.clone()],
            first_word,
            request.subword_pooling,
            special,
        );
        out.push(sequence);
        first_word += window.len();
    }
    Ok(pieces.len())
}

/// Cuts words into consecutive runs whose subwords fit `capacity`, filling
/// each window greedily (every word fits on its own; checked by the caller).
fn word_windows(pieces: &[Vec<u32>], capacity: usize) -> Vec<Range<usize>> {
    let mut windows = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (word, p) in pieces.iter().enumerate() {
        if used + p.len() > capacity {
            windows.push(start..word);
            (start, used) = (word, 0);
        }
        used += p.len();
    }
    if start < pieces.len() {
        windows.push(start..pieces.len());
    }
    windows
}

fn word_window_sequence(
    words: &[Vec<u32>],
    first_row: usize,
    pooling: SubwordPooling,
    special: SpecialIds,
) -> Sequence {
    let mut ids = vec![special.cls];
    let mut targets = Vec::with_capacity(words.len());
    for (offset, pieces) in words.iter().enumerate() {
        let span = ids.len()..ids.len() + pieces.len();
        targets.push(RowTarget {
            row: first_row + offset,
            positions: select_subwords(span, pooling),
        });
        ids.extend_from_slice(pieces);
    }
    ids.push(special.sep);
    let type_ids = vec![0; ids.len()];
    Sequence {
        ids,
        type_ids,
        targets,
    }
}

/// A sentence's subwords: its text, or its pre-split words when it has no
/// text (pre-tokenised corpora).
fn sentence_pieces(unit: &TextUnit, tokenizer: &TokenizerBundle) -> Result<Vec<u32>, String> {
    if unit.text.is_empty() && !unit.words.is_empty() {
        Ok(tokenizer.word_pieces(&unit.words)?.concat())
    } else {
        tokenizer.text_pieces(&unit.text)
    }
}

/// A sentence unit's sequence(s) for its one row (row 0), windowed when a
/// single sentence is too long.
fn plan_sentence_unit(
    index: usize,
    unit: &TextUnit,
    request: &EncodeRequest,
    tokenizer: &TokenizerBundle,
    max_positions: usize,
    out: &mut Vec<Sequence>,
) -> Result<usize, String> {
    let first = sentence_pieces(unit, tokenizer)?;
    let pair = match unit.pair.as_ref().into_option() {
        Some(text) => Some(tokenizer.text_pieces(text)?),
        None => None,
    };
    let special = tokenizer.special_ids();
    let pooling = request.sentence_pooling;
    let row = 0;
    let length = first.len() + 2 + pair.as_ref().map_or(0, |p| p.len() + 1);
    if length <= max_positions {
        let sequence = sentence_sequence(&first, pair.as_deref(), row, pooling, special);
        out.push(sequence);
    } else if pair.is_some() {
        return Err(format!(
            "unit {index}: the sentence pair is {length} tokens long with specials, more than \
             the model's maximum of {max_positions}; shorten it (pairs are not windowed)"
        ));
    } else {
        for window in first.chunks(max_positions - 2) {
            out.push(sentence_sequence(window, None, row, pooling, special));
        }
    }
    Ok(1)
}

fn sentence_sequence(
    first: &[u32],
    pair: Option<&[u32]>,
    row: usize,
    pooling: SentencePooling,
    special: SpecialIds,
) -> Sequence {
    let mut ids = Vec::with_capacity(first.len() + pair.map_or(0, <[u32]>::len) + 3);
    ids.push(special.cls);
    ids.extend_from_slice(first);
    ids.push(special.sep);
    let first_len = ids.len();
    let mut content = Vec::with_capacity(2);
    content.push(1..1 + first.len());
    if let Some(pair) = pair {
        content.push(ids.len()..ids.len() + pair.len());
        ids.extend_from_slice(pair);
        ids.push(special.sep);
    }
    let mut type_ids = vec![0; ids.len()];
    type_ids[first_len..].fill(1);
    let targets = sentence_targets(content, ids.len(), row, pooling);
    Sequence {
        ids,
        type_ids,
        targets,
    }
}

/// `[CLS]`, or the mean over the content tokens; an empty sentence (no
/// content token) is the mean over its specials rather than undefined.
fn sentence_targets(
    content: Vec<Range<usize>>,
    length: usize,
    row: usize,
    pooling: SentencePooling,
) -> Vec<RowTarget> {
    let target = |positions| RowTarget { row, positions };
    match pooling {
        SentencePooling::Cls => vec![target(0..1)],
        SentencePooling::Mean if content.iter().all(|r| r.is_empty()) => vec![target(0..length)],
        SentencePooling::Mean => content
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(target)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tests::{bundle, id};
    use sieve_core::abi_stable::std_types::RVec;

    fn request(units: Vec<TextUnit>, level: RowLevel) -> EncodeRequest {
        EncodeRequest {
            units: RVec::from(units),
            level,
            subword_pooling: SubwordPooling::Last,
            sentence_pooling: SentencePooling::Cls,
            last_layer: 0,
            batch_size: 8,
        }
    }

    #[test]
    fn words_get_specials_and_their_subword_positions() {
        let req = request(
            vec![TextUnit::words(&["the", "cats", "sat"])],
            RowLevel::Word,
        );
        let plan = build_plan(&req, &bundle(), 512).expect("plan");
        let seq = &plan.sequences[0];
        let expected = ["[CLS]", "the", "cat", "##s", "sat", "[SEP]"].map(id);
        assert_eq!(seq.ids, expected);
        let rows: Vec<_> = seq
            .targets
            .iter()
            .map(|t| (t.row, t.positions.clone()))
            .collect();
        assert_eq!(rows, vec![(0, 1..2), (1, 3..4), (2, 4..5)]);
        assert_eq!(plan.rows_per_unit, vec![3]);
        assert_eq!(plan.subword_tokens, 4);
    }

    #[test]
    fn first_and_average_pooling_select_their_positions() {
        let mut req = request(vec![TextUnit::words(&["unbelievable"])], RowLevel::Word);
        req.subword_pooling = SubwordPooling::First;
        let plan = build_plan(&req, &bundle(), 512).expect("plan");
        assert_eq!(plan.sequences[0].targets[0].positions, 1..2);
        req.subword_pooling = SubwordPooling::Average;
        let plan = build_plan(&req, &bundle(), 512).expect("plan");
        assert_eq!(plan.sequences[0].targets[0].positions, 1..4);
    }

    #[test]
    fn long_word_units_split_into_windows_of_whole_words() {
        // 6 words, 9 subwords; 5 positions leave 3 subwords per window.
        let words = ["the", "cats", "sat", "on", "unbelievable", "mat"];
        let req = request(
            vec![TextUnit::words(&words), TextUnit::words(&["a"])],
            RowLevel::Word,
        );
        let plan = build_plan(&req, &bundle(), 5).expect("plan");
        let lengths: Vec<_> = plan.sequences.iter().map(Sequence::len).collect();
        assert_eq!(lengths, vec![5, 4, 5, 3, 3]);
        assert!(plan.sequences.iter().all(|s| s.len() <= 5));
        let rows: Vec<usize> = plan
            .sequences
            .iter()
            .flat_map(|s| s.targets.iter().map(|t| t.row))
            .collect();
        assert_eq!(rows, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(plan.windowed_units, 1);
        assert_eq!(plan.rows_per_unit, vec![6, 1]);
        assert!(plan.sequences.iter().all(|s| s.ids[0] == id("[CLS]")));
    }

    #[test]
    fn a_word_longer_than_the_model_is_an_error_naming_it() {
        let req = request(
            vec![TextUnit::words(&["the", "unbelievable"])],
            RowLevel::Word,
        );
        let message = build_plan(&req, &bundle(), 4).expect_err("error");
        assert!(
            message.contains("unit 0: word 1 ('unbelievable') has 3 subwords"),
            "{message}"
        );
    }

    #[test]
    fn sentence_pair_types_and_mean_targets() {
        let mut req = request(
            vec![TextUnit::sentence("the cat", Some("a mat"))],
            RowLevel::Sentence,
        );
        req.sentence_pooling = SentencePooling::Mean;
        let plan = build_plan(&req, &bundle(), 512).expect("plan");
        let seq = &plan.sequences[0];
        assert_eq!(
            seq.ids,
            ["[CLS]", "the", "cat", "[SEP]", "a", "mat", "[SEP]"].map(id)
        );
        assert_eq!(seq.type_ids, vec![0, 0, 0, 0, 1, 1, 1]);
        let ranges: Vec<_> = seq.targets.iter().map(|t| t.positions.clone()).collect();
        assert_eq!(ranges, vec![1..3, 4..6]);
        assert_eq!(plan.subword_tokens, 4);
    }

    #[test]
    fn a_long_sentence_is_windowed_into_one_row() {
        let req = request(
            vec![TextUnit::sentence("the cat sat on the mat", None)],
            RowLevel::Sentence,
        );
        let plan = build_plan(&req, &bundle(), 6).expect("plan");
        assert_eq!(plan.sequences.len(), 2);
        assert!(plan.sequences.iter().all(|s| s.targets
            == vec![RowTarget {
                row: 0,
                positions: 0..1
            }]));
        assert_eq!((plan.rows, plan.windowed_units), (1, 1));
    }

    #[test]
    fn a_long_pair_is_an_error_naming_the_unit() {
        let units = vec![
            TextUnit::sentence("the", None),
            TextUnit::sentence("the cat sat", Some("on the mat")),
        ];
        let message =
            build_plan(&request(units, RowLevel::Sentence), &bundle(), 8).expect_err("error");
        assert!(
            message.contains("unit 1: the sentence pair is 9 tokens long"),
            "{message}"
        );
    }

    #[test]
    fn sentence_level_accepts_pre_split_words() {
        let req = request(vec![TextUnit::words(&["the", "cats"])], RowLevel::Sentence);
        let plan = build_plan(&req, &bundle(), 512).expect("plan");
        assert_eq!(
            plan.sequences[0].ids,
            ["[CLS]", "the", "cat", "##s", "[SEP]"].map(id)
        );
    }

    #[test]
    fn empty_sentence_mean_uses_its_specials() {
        let mut req = request(vec![TextUnit::sentence("", None)], RowLevel::Sentence);
        req.sentence_pooling = SentencePooling::Mean;
        let plan = build_plan(&req, &bundle(), 512).expect("plan");
        assert_eq!(plan.sequences[0].targets[0].positions, 0..2);
    }

    #[test]
    fn word_level_without_words_is_an_error() {
        let req = request(vec![TextUnit::sentence("the cat", None)], RowLevel::Word);
        assert!(build_plan(&req, &bundle(), 512).is_err());
    }
}
