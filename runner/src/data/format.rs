//! The `reader:` block of a spec: which file format, with its options.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// How a data file is laid out. In YAML, `format:` picks the variant and
/// the other keys are that format's options, all optional except
/// `labels:` for `parallel`, e.g. `{format: conll, tag_column: 3}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(tag = "format", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataFormat {
    /// One sentence per line, tokens separated by whitespace, each token
    /// `WORD/TAG`. The word/tag split is at the *last* separator, since
    /// words may contain it (`1/2/CD`).
    WordTag {
        #[serde(default = "default_separator")]
        separator: String,
    },
    /// Universal Dependencies CoNLL-U: 10 tab-separated columns per token,
    /// sentences separated by blank lines. Comments (`#`), multiword token
    /// ranges (`1-2`) and empty nodes (`1.1`) are skipped, so rows are the
    /// syntactic words.
    Conllu {
        #[serde(default)]
        tag_column: ConlluTag,
    },
    /// Generic CoNLL columns (e.g. CoNLL-2003 `word POS chunk NER`): one
    /// token per line, sentences separated by blank lines. Columns are
    /// 0-based.
    Conll {
        #[serde(default)]
        word_column: usize,
        #[serde(default = "default_conll_tag_column")]
        tag_column: usize,
        #[serde(default)]
        separator: ColumnSeparator,
        /// Treat `-DOCSTART-` lines as document breaks, not words.
        #[serde(default = "default_true")]
        skip_docstart: bool,
    },
    /// NeuroX layout: the data file holds one sentence per line (words
    /// split at whitespace) and `labels` the tags, line for line and token
    /// for token.
    Parallel { labels: PathBuf },
    /// Tab-separated rows, one sentence (or pair) and one label per row.
    /// Plain tab splitting: no quote processing, so a field cannot hold a
    /// tab and quotes are kept as text. With `header: true` (the default)
    /// columns are named by the header row; without a header they are
    /// 0-based indices, written as numbers or strings (`"1"`).
    Tsv {
        #[serde(default = "default_text_column", deserialize_with = "column")]
        text_column: String,
        #[serde(default, deserialize_with = "optional_column")]
        pair_column: Option<String>,
        #[serde(default = "default_label_column", deserialize_with = "column")]
        label_column: String,
        #[serde(default = "default_true")]
        header: bool,
    },
}

/// The CoNLL-U column that gives each word's label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConlluTag {
    Lemma,
    #[default]
    Upos,
    Xpos,
    Feats,
    Head,
    Deprel,
    Misc,
}

impl ConlluTag {
    /// 0-based column in a CoNLL-U token line.
    pub fn index(self) -> usize {
        match self {
            ConlluTag::Lemma => 2,
            ConlluTag::Upos => 3,
            ConlluTag::Xpos => 4,
            ConlluTag::Feats => 5,
            ConlluTag::Head => 6,
            ConlluTag::Deprel => 7,
            ConlluTag::Misc => 9,
        }
    }

    /// The column's name as CoNLL-U documentation spells it.
    pub fn name(self) -> &'static str {
        [
            "ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC",
        ][self.index()]
    }

    /// Whether `_` (unspecified) is a real value in this column; for tags
    /// a probe should learn, `_` means the treebank left the column empty.
    pub fn underscore_is_value(self) -> bool {
        matches!(self, ConlluTag::Feats | ConlluTag::Misc | ConlluTag::Lemma)
    }
}

/// What separates the columns of a CoNLL file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnSeparator {
    /// Any run of spaces or tabs (fields cannot be empty).
    #[default]
    Whitespace,
    /// Exactly one tab (fields may hold spaces).
    Tab,
}

impl DataFormat {
    /// True for formats with one label per word (rows are words), false
    /// for one label per text (rows are texts).
    pub fn is_word_level(&self) -> bool {
        !matches!(self, DataFormat::Tsv { .. })
    }

    /// The name used after `format:` in a spec, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            DataFormat::WordTag { .. } => "word-tag",
            DataFormat::Conllu { .. } => "conllu",
            DataFormat::Conll { .. } => "conll",
            DataFormat::Parallel { .. } => "parallel",
            DataFormat::Tsv { .. } => "tsv",
        }
    }

    /// Makes relative paths among the options (the `parallel` labels file)
    /// absolute against `base`, the spec's folder, so that they do not
    /// depend on the working directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let DataFormat::Parallel { labels } = self {
            if labels.is_relative() {
                *labels = base.join(&*labels);
            }
        }
    }

    /// Files read besides the data file itself (for cache keys and
    /// reports): the `parallel` labels file.
    pub fn companion_files(&self) -> Vec<&Path> {
        match self {
            DataFormat::Parallel { labels } => vec![labels.as_path()],
            _ => Vec::new(),
        }
    }
}

fn default_separator() -> String {
    "/".into()
}

fn default_conll_tag_column() -> usize {
    1
}

fn default_true() -> bool {
    true
}

fn default_text_column() -> String {
    "text".into()
}

fn default_label_column() -> String {
    "label".into()
}

/// A column given as a name or a 0-based index; YAML `1` and `"1"` both
/// mean index 1 when the file has no header.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameOrIndex {
    Name(String),
    Index(u64),
}

impl From<NameOrIndex> for String {
    fn from(value: NameOrIndex) -> Self {
        match value {
            NameOrIndex::Name(name) => name,
            NameOrIndex::Index(index) => index.to_string(),
        }
    }
}

fn column<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    NameOrIndex::deserialize(deserializer).map(String::from)
}

fn optional_column<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<NameOrIndex>::deserialize(deserializer).map(|c| c.map(String::from))
}
