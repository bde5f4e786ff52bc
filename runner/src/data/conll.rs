//! `format: conll`: one token per line in columns (CoNLL-2000/2003 and
//! similar), sentences separated by blank lines.

use super::source::Source;
use super::{ColumnSeparator, DataError, SentenceBuilder, Unit};

const DOCSTART: &str = "-DOCSTART-";

/// The `conll` options of the spec.
pub(super) struct Options {
    pub word_column: usize,
    pub tag_column: usize,
    pub separator: ColumnSeparator,
    pub skip_docstart: bool,
}

/// Reads sentences separated by blank lines (and by `-DOCSTART-` lines,
/// which mark document breaks, when skipped).
pub(super) fn read(source: &Source, options: &Options) -> Result<Vec<Unit>, DataError> {
    let mut units = Vec::new();
    let mut sentence = SentenceBuilder::default();
    for (n, line) in source.lines() {
        if line.trim().is_empty() {
            sentence.finish(&mut units);
            continue;
        }
        let fields = split(line, options.separator);
        if options.skip_docstart && fields.first() == Some(&DOCSTART) {
            sentence.finish(&mut units);
            continue;
        }
        let (word, label) = read_token(source, n, &fields, options)?;
        sentence.push(n, word, label);
    }
    sentence.finish(&mut units);
    Ok(units)
}

fn split(line: &str, separator: ColumnSeparator) -> Vec<&str> {
    match separator {
        ColumnSeparator::Whitespace => line.split_whitespace().collect(),
        ColumnSeparator::Tab => line.split('\t').collect(),
    }
}

fn read_token<'a>(
    source: &Source,
    n: usize,
    fields: &[&'a str],
    options: &Options,
) -> Result<(&'a str, &'a str), DataError> {
    let word = column(source, n, fields, options.word_column, "word_column")?;
    let label = column(source, n, fields, options.tag_column, "tag_column")?;
    Ok((word, label))
}

/// Field `index`, which must exist and be non-empty; `option` names the
/// spec option that chose it, for the fix.
fn column<'a>(
    source: &Source,
    n: usize,
    fields: &[&'a str],
    index: usize,
    option: &str,
) -> Result<&'a str, DataError> {
    let Some(&value) = fields.get(index) else {
        return Err(source.error(
            n,
            format!(
                "the line has {} column(s) but {option} is {index} (0-based), so it needs at least {}",
                fields.len(),
                // Saturating: the spec may ask for the largest index there is.
                index.saturating_add(1)
            ),
            format!("set `{option}:` to a column the file has (0-based), or complete the line; `separator:` is whitespace or tab"),
        ));
    };
    if value.trim().is_empty() {
        return Err(source.error(
            n,
            format!("column {index} ({option}) is empty"),
            "every token line needs a word and a label; with `separator: tab` check for doubled tabs",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{read_err, read_ok};
    use crate::data::{ColumnSeparator, DataFormat};

    fn conll(
        word_column: usize,
        tag_column: usize,
        separator: ColumnSeparator,
        skip: bool,
    ) -> DataFormat {
        DataFormat::Conll {
            word_column,
            tag_column,
            separator,
            skip_docstart: skip,
        }
    }

    const CONLL2003: &str =
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n";

    #[test]
    fn reads_columns_and_skips_docstart() {
        let corpus = read_ok(&conll(0, 3, ColumnSeparator::Whitespace, true), CONLL2003);
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[0].words, ["EU", "rejects"]);
        assert_eq!(corpus.units[0].labels, ["B-ORG", "O"]);
        assert_eq!(corpus.units[0].line, 3);
        assert_eq!(corpus.units[1].line, 6);
        let pos = read_ok(&conll(0, 1, ColumnSeparator::Whitespace, true), CONLL2003);
        assert_eq!(pos.units[1].labels, ["NNP"]);
    }

    #[test]
    fn docstart_kept_when_asked() {
        let corpus = read_ok(&conll(0, 1, ColumnSeparator::Whitespace, false), CONLL2003);
        assert_eq!(corpus.units.len(), 3);
        assert_eq!(corpus.units[0].words, ["-DOCSTART-"]);
    }

    #[test]
    fn docstart_without_blank_line_ends_the_sentence() {
        let text = "a X\n-DOCSTART- O\nb Y\n";
        let corpus = read_ok(&conll(0, 1, ColumnSeparator::Whitespace, true), text);
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[1].line, 3);
    }

    /// Found while fuzzing the options: `index + 1` overflowed (a panic in
    /// a debug build, "at least 0" in a release one).
    #[test]
    fn the_largest_column_index_is_an_error_not_an_overflow() {
        let format = conll(0, usize::MAX, ColumnSeparator::Whitespace, true);
        read_err(
            &format,
            "EU NNP\n",
            Some(1),
            &[
                "tag_column is 18446744073709551615",
                "at least 18446744073709551615",
            ],
        );
    }

    #[test]
    fn tab_separator_keeps_spaces_in_words() {
        let text = "New York\tNNP\nis\tVBZ\n";
        let corpus = read_ok(&conll(0, 1, ColumnSeparator::Tab, true), text);
        assert_eq!(corpus.units[0].words, ["New York", "is"]);
    }

    #[test]
    fn crlf_and_bom() {
        let text = format!("\u{feff}{}", CONLL2003.replace('\n', "\r\n"));
        let corpus = read_ok(&conll(0, 3, ColumnSeparator::Whitespace, true), text);
        assert_eq!(corpus.units[0].labels, ["B-ORG", "O"]);
        assert_eq!(corpus.units[1].line, 6);
    }

    #[test]
    fn missing_column() {
        let text = "EU NNP B-NP B-ORG\nrejects VBZ\n";
        read_err(
            &conll(0, 3, ColumnSeparator::Whitespace, true),
            text,
            Some(2),
            &["has 2 column(s) but tag_column is 3", "`tag_column:`"],
        );
    }

    #[test]
    fn empty_field_with_tabs() {
        read_err(
            &conll(0, 1, ColumnSeparator::Tab, true),
            "a\tX\n\tY\n",
            Some(2),
            &["column 0 (word_column) is empty"],
        );
    }
}
