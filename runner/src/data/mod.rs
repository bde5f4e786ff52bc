//! Labelled corpus readers: the spec's data files as [`Unit`]s.
//!
//! One file per format; each reads the whole file (they are small) through
//! [`source::Source`], which handles a UTF-8 BOM, CRLF line endings and
//! invalid UTF-8 once for all of them. Errors are [`DataError`]s naming the
//! file, the line, the problem and the fix.

mod conll;
mod conllu;
mod error;
mod format;
mod parallel;
mod source;
mod tsv;
mod word_tag;

#[cfg(test)]
pub(crate) mod fuzz;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::DataError;
pub use format::{ColumnSeparator, ConlluTag, DataFormat};

use source::Source;

/// One labelled unit: a sentence of pre-split words with one tag per word
/// (tagging), or a text (+ optional pair) with one label (classification
/// or regression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The words, for tagging formats; empty for sentence formats (`tsv`),
    /// where the backend tokenizes `text` itself.
    pub words: Vec<String>,
    /// The text: the words joined by single spaces for tagging formats.
    pub text: String,
    /// The second text of a sentence pair (`tsv` with `pair_column`).
    pub pair: Option<String>,
    /// One per word for tagging, exactly one for sentence tasks.
    pub labels: Vec<String>,
    /// 1-based line in the source file where the unit starts.
    pub line: usize,
}

impl Unit {
    /// A tagged sentence; `words` and `labels` have the same length.
    pub fn tagged(words: Vec<String>, labels: Vec<String>, line: usize) -> Self {
        Self {
            text: words.join(" "),
            words,
            pair: None,
            labels,
            line,
        }
    }

    /// A text (or pair of texts) with one label.
    pub fn sentence(text: String, pair: Option<String>, label: String, line: usize) -> Self {
        Self {
            words: Vec::new(),
            text,
            pair,
            labels: vec![label],
            line,
        }
    }
}

/// A whole data file, read.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The data file (for `parallel`, the sentences file).
    pub path: PathBuf,
    pub units: Vec<Unit>,
    /// Whether rows are words (see [`DataFormat::is_word_level`]).
    pub word_level: bool,
}

impl Corpus {
    /// Probe rows: words for tagging, units for sentence tasks.
    pub fn num_rows(&self) -> usize {
        if self.word_level {
            self.units.iter().map(|u| u.words.len()).sum()
        } else {
            self.units.len()
        }
    }

    /// Every label, in file order (one per row).
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.units
            .iter()
            .flat_map(|u| u.labels.iter().map(String::as_str))
    }
}

/// Reads `path` as `format`. A file without a single unit is an error, as
/// it is always a wrong path or a wrong format.
pub fn read_corpus(format: &DataFormat, path: &Path) -> Result<Corpus, DataError> {
    let source = Source::read(path)?;
    let units = read_units(format, &source)?;
    if units.is_empty() {
        return Err(DataError::file(
            path,
            format!("no labelled units found (read as `format: {}`)", format.name()),
            "the file is empty or holds only blank lines, comments or a header; check the path and the format",
        ));
    }
    Ok(Corpus {
        path: path.to_path_buf(),
        units,
        word_level: format.is_word_level(),
    })
}

fn read_units(format: &DataFormat, source: &Source) -> Result<Vec<Unit>, DataError> {
    match format {
        DataFormat::WordTag { separator } => word_tag::read(source, separator),
        DataFormat::Conllu { tag_column } => conllu::read(source, *tag_column),
        DataFormat::Conll {
            word_column,
            tag_column,
            separator,
            skip_docstart,
        } => conll::read(
            source,
            &conll::Options {
                word_column: *word_column,
                tag_column: *tag_column,
                separator: *separator,
                skip_docstart: *skip_docstart,
            },
        ),
        DataFormat::Parallel { labels } => parallel::read(source, &Source::read(labels)?),
        DataFormat::Tsv {
            text_column,
            pair_column,
            label_column,
            header,
        } => tsv::read(
            source,
            &tsv::Options {
                text_column,
                pair_column: pair_column.as_deref(),
                label_column,
                header: *header,
            },
        ),
    }
}

/// Collects one-token-per-line sentences (CoNLL, CoNLL-U) between blank
/// lines, remembering where each began.
#[derive(Default)]
struct SentenceBuilder {
    start: Option<usize>,
    words: Vec<String>,
    labels: Vec<String>,
}

impl SentenceBuilder {
    /// Notes that the current sentence has reached `line` (the first such
    /// line becomes the unit's line).
    fn touch(&mut self, line: usize) {
        self.start.get_or_insert(line);
    }

    fn push(&mut self, line: usize, word: &str, label: &str) {
        self.touch(line);
        self.words.push(word.to_owned());
        self.labels.push(label.to_owned());
    }

    /// Ends the current sentence; one without words (e.g. only comments)
    /// is dropped.
    fn finish(&mut self, out: &mut Vec<Unit>) {
        let start = self.start.take();
        let words = std::mem::take(&mut self.words);
        let labels = std::mem::take(&mut self.labels);
        if let (Some(line), false) = (start, words.is_empty()) {
            out.push(Unit::tagged(words, labels, line));
        }
    }
}
