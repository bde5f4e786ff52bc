//! Loading a Hugging Face tokenizer and turning words and sentences into
//! subword ids.
//!
//! Special tokens are NOT added by the tokenizer: [`crate::build_plan`]
//! places `[CLS]`/`[SEP]` itself, because it must be able to cut a long unit
//! into windows that each get their own specials.

use std::path::Path;

use serde_json::Value;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer};

/// Ids of the special tokens a BERT-style sequence is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialIds {
    /// Starts every sequence (`[CLS]`, or `<s>` in RoBERTa-style vocabularies).
    pub cls: u32,
    /// Ends every segment (`[SEP]` or `</s>`).
    pub sep: u32,
    /// Fills padded positions (masked out, so its value only matters for
    /// the embedding lookup); 0 when the vocabulary has no pad token.
    pub pad: u32,
    /// Stands in for a word the tokenizer turns into no subword at all.
    pub unk: u32,
}

/// A tokenizer ready for pre-split words and raw sentences, plus its
/// special token ids.
#[derive(Debug)]
pub struct TokenizerBundle {
    tokenizer: Tokenizer,
    special: SpecialIds,
}

impl TokenizerBundle {
    /// Loads the tokenizer of a Hugging Face model folder: `tokenizer.json`
    /// if present, else a BERT WordPiece tokenizer built from `vocab.txt`.
    pub fn from_folder(dir: &Path) -> Result<Self, String> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        if json.is_file() {
            let tokenizer = Tokenizer::from_file(&json)
                .map_err(|e| format!("cannot read tokenizer '{}': {e}", json.display()))?;
            Self::from_tokenizer(tokenizer)
        } else if vocab.is_file() {
            Self::from_tokenizer(wordpiece_from_vocab(&vocab, lowercase_setting(dir))?)
        } else {
            Err(format!(
                "model folder '{}' has neither tokenizer.json nor vocab.txt: \
                 point `model` at a complete Hugging Face model folder",
                dir.display()
            ))
        }
    }

    /// Wraps a tokenizer, turning off its padding and truncation (lengths
    /// are handled by windowing, never by silent cutting).
    pub fn from_tokenizer(mut tokenizer: Tokenizer) -> Result<Self, String> {
        // Read before padding is turned off: its pad id is the model's.
        let special = find_special_ids(&tokenizer)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| format!("cannot turn off the tokenizer's truncation: {e}"))?;
        Ok(TokenizerBundle { tokenizer, special })
    }

    pub fn special_ids(&self) -> SpecialIds {
        self.special
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Subword ids of each pre-split word, one non-empty list per word.
    ///
    /// A word the tokenizer drops entirely (control characters, an empty
    /// string) becomes `[UNK]`, so that a unit always yields one row per word.
    pub fn word_pieces<S: AsRef<str>>(&self, words: &[S]) -> Result<Vec<Vec<u32>>, String> {
        let mut pieces = vec![Vec::new(); words.len()];
        if words.is_empty() {
            return Ok(pieces);
        }
        let input: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        let encoding = self
            .tokenizer
            .encode(input.as_slice(), false)
            .map_err(|e| format!("tokenizer failed on pre-split words: {e}"))?;
        for (&id, word) in encoding.get_ids().iter().zip(encoding.get_word_ids()) {
            if let Some(slot) = word.and_then(|w| pieces.get_mut(w as usize)) {
                slot.push(id);
            }
        }
        for word in pieces.iter_mut().filter(|p| p.is_empty()) {
            word.push(self.special.unk);
        }
        Ok(pieces)
    }

    /// Subword ids of a raw sentence, without specials.
    pub fn text_pieces(&self, text: &str) -> Result<Vec<u32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("tokenizer failed on a sentence: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }
}

/// The first of `candidates` the vocabulary knows.
fn first_known(tokenizer: &Tokenizer, candidates: &[&str]) -> Option<u32> {
    candidates.iter().find_map(|t| tokenizer.token_to_id(t))
}

/// The specials the tokenizer's own post-processor and padding use, where
/// it names them; else the first known of the usual names. MPNet's
/// vocabulary holds BERT's `[CLS]`/`[SEP]`/`[PAD]` as well as the `<s>`,
/// `</s>`, `<pad>` the model was trained with: only the tokenizer's
/// settings say which pair is meant.
fn find_special_ids(tokenizer: &Tokenizer) -> Result<SpecialIds, String> {
    let missing = |what: &str| {
        format!("the tokenizer's vocabulary has no {what} token; a BERT-style vocabulary is needed")
    };
    let (cls, sep) = match tokenizer.get_post_processor() {
        Some(PostProcessorWrapper::Bert(p)) => (Some(p.cls.1), Some(p.sep.1)),
        Some(PostProcessorWrapper::Roberta(p)) => (Some(p.cls.1), Some(p.sep.1)),
        _ => (None, None),
    };
    let pad = tokenizer.get_padding().map(|p| p.pad_id);
    Ok(SpecialIds {
        cls: cls
            .or_else(|| first_known(tokenizer, &["[CLS]", "<s>"]))
            .ok_or_else(|| missing("[CLS]"))?,
        sep: sep
            .or_else(|| first_known(tokenizer, &["[SEP]", "</s>"]))
            .ok_or_else(|| missing("[SEP]"))?,
        unk: first_known(tokenizer, &["[UNK]", "<unk>"]).ok_or_else(|| missing("[UNK]"))?,
        pad: pad
            .or_else(|| first_known(tokenizer, &["[PAD]", "<pad>"]))
            .unwrap_or(0),
    })
}

/// `do_lower_case` from tokenizer_config.json, else config.json, else true
/// (most BERT vocabularies shipped without a tokenizer.json are uncased).
fn lowercase_setting(dir: &Path) -> bool {
    ["tokenizer_config.json", "config.json"]
        .iter()
        .filter_map(|name| std::fs::read_to_string(dir.join(name)).ok())
        .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
        .find_map(|json| json.get("do_lower_case").and_then(Value::as_bool))
        .unwrap_or(true)
}

/// The tokenizer `BertTokenizer` would be: BERT normaliser and
/// pre-tokeniser, WordPiece with `##` continuations, specials registered so
/// that they are never split or lowercased.
fn wordpiece_from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer, String> {
    let path = vocab
        .to_str()
        .ok_or_else(|| format!("vocabulary path '{}' is not UTF-8", vocab.display()))?;
    let model = WordPiece::from_file(path)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .build()
        .map_err(|e| format!("cannot read vocabulary '{}': {e}", vocab.display()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| format!("cannot set up the BERT normaliser: {e}"))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .filter(|t| tokenizer.token_to_id(t).is_some())
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| format!("cannot register special tokens: {e}"))?;
    Ok(tokenizer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny uncased vocabulary: specials at 0..=4, then words and pieces.
    pub const VOCAB: &[&str] = &[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "un",
        "##believ", "##able", ".", ",", "a", "##s",
    ];

    pub fn id(token: &str) -> u32 {
        VOCAB
            .iter()
            .position(|t| *t == token)
            .expect("token in VOCAB") as u32
    }

    /// A folder with only vocab.txt (and optionally a tokenizer_config.json).
    pub fn vocab_folder(config: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("vocab.txt"), VOCAB.join("\n")).expect("write vocab");
        if let Some(config) = config {
            std::fs::write(dir.path().join("tokenizer_config.json"), config).expect("config");
        }
        dir
    }

    pub fn bundle() -> TokenizerBundle {
        let dir = vocab_folder(None);
        TokenizerBundle::from_folder(dir.path()).expect("tokenizer from vocab.txt")
    }

    #[test]
    fn special_ids_come_from_the_vocabulary() {
        let special = bundle().special_ids();
        assert_eq!(
            special,
            SpecialIds {
                cls: 2,
                sep: 3,
                pad: 0,
                unk: 1
            }
        );
    }

    #[test]
    fn the_post_processor_and_padding_name_the_specials() {
        // MPNet-style: BERT's [CLS]/[SEP]/[PAD] are in the vocabulary too,
        // but the tokenizer adds <s> and </s> and pads with <pad>.
        let dir = tempfile::tempdir().expect("tempdir");
        let vocab = [
            "<s>", "<pad>", "</s>", "[UNK]", "[PAD]", "[CLS]", "[SEP]", "the",
        ];
        std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n")).expect("vocab");
        let mut tokenizer = wordpiece_from_vocab(&dir.path().join("vocab.txt"), true).expect("tok");
        tokenizer.with_post_processor(Some(
            tokenizers::processors::roberta::RobertaProcessing::new(
                ("</s>".into(), 2),
                ("<s>".into(), 0),
            ),
        ));
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            pad_id: 1,
            pad_token: "<pad>".into(),
            ..Default::default()
        }));
        let bundle = TokenizerBundle::from_tokenizer(tokenizer).expect("bundle");
        let expected = SpecialIds {
            cls: 0,
            sep: 2,
            pad: 1,
            unk: 3,
        };
        assert_eq!(bundle.special_ids(), expected);
        assert!(bundle.tokenizer().get_padding().is_none());
    }

    #[test]
    fn words_map_to_their_own_pieces() {
        let pieces = bundle()
            .word_pieces(&["The", "cats", "unbelievable", "N.", "zzz"])
            .expect("pieces");
        assert_eq!(pieces[0], vec![id("the")]);
        assert_eq!(pieces[1], vec![id("cat"), id("##s")]);
        assert_eq!(pieces[2], vec![id("un"), id("##believ"), id("##able")]);
        // The pre-tokeniser splits "N." into "n" (unknown) and "." - both
        // stay with the word they came from.
        assert_eq!(pieces[3], vec![id("[UNK]"), id(".")]);
        assert_eq!(pieces[4], vec![id("[UNK]")]);
    }

    #[test]
    fn a_word_without_subwords_still_gets_one_piece() {
        let pieces = bundle()
            .word_pieces(&["cat", "\u{7}", "", "mat"])
            .expect("pieces");
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[1], vec![id("[UNK]")]);
        assert_eq!(pieces[2], vec![id("[UNK]")]);
        assert_eq!(pieces[3], vec![id("mat")]);
    }

    #[test]
    fn cased_config_keeps_case() {
        let dir = vocab_folder(Some(r#"{"do_lower_case": false}"#));
        let bundle = TokenizerBundle::from_folder(dir.path()).expect("tokenizer");
        assert_eq!(
            bundle.word_pieces(&["The"]).expect("pieces")[0],
            vec![id("[UNK]")]
        );
    }

    #[test]
    fn text_pieces_have_no_specials() {
        let ids = bundle().text_pieces("The cat sat.").expect("pieces");
        assert_eq!(ids, vec![id("the"), id("cat"), id("sat"), id(".")]);
    }

    #[test]
    fn missing_files_name_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let message = TokenizerBundle::from_folder(dir.path()).expect_err("error");
        assert!(
            message.contains("neither tokenizer.json nor vocab.txt"),
            "{message}"
        );
    }

    #[test]
    fn tokenizer_json_padding_and_truncation_are_turned_off() {
        let dir = vocab_folder(None);
        let mut tokenizer = wordpiece_from_vocab(&dir.path().join("vocab.txt"), true).expect("tok");
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(16),
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: 2,
                ..Default::default()
            }))
            .expect("truncation");
        tokenizer
            .save(dir.path().join("tokenizer.json"), false)
            .expect("save");
        let bundle = TokenizerBundle::from_folder(dir.path()).expect("tokenizer.json");
        let ids = bundle
            .text_pieces("the cat sat on the mat")
            .expect("pieces");
        assert_eq!(ids.len(), 6);
    }
}
