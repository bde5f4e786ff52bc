//! `format: conllu`: Universal Dependencies files. Rows are the syntactic
//! words: multiword token ranges (`1-2`) and empty nodes (`1.1`) carry no
//! tag of their own in the layer being probed, so they are skipped.

use super::source::Source;
use super::{ConlluTag, DataError, SentenceBuilder, Unit};

const COLUMNS: usize = 10;
const FORM: usize = 1;

/// Reads sentences separated by blank lines, skipping `#` comments.
pub(super) fn read(source: &Source, tag: ConlluTag) -> Result<Vec<Unit>, DataError> {
    let mut units = Vec::new();
    let mut sentence = SentenceBuilder::default();
    for (n, line) in source.lines() {
        if line.trim().is_empty() {
            sentence.finish(&mut units);
        } else if line.starts_with('#') {
            sentence.touch(n);
        } else if let Some((word, label)) = read_token(source, n, line, tag)? {
            sentence.push(n, word, label);
        }
    }
    sentence.finish(&mut units);
    Ok(units)
}

/// The word and its label, or `None` for ranges and empty nodes.
fn read_token<'a>(
    source: &Source,
    n: usize,
    line: &'a str,
    tag: ConlluTag,
) -> Result<Option<(&'a str, &'a str)>, DataError> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != COLUMNS {
        return Err(column_count_error(source, n, line, fields.len()));
    }
    if !is_word_id(source, n, fields[0])? {
        return Ok(None);
    }
    let word = fields[FORM];
    // A form or label of spaces is as empty as none (found by the fuzz
    // test): it would become a word without subwords or a class "  ".
    if word.trim().is_empty() {
        return Err(source.error(
            n,
            "the FORM column (2nd) is empty",
            "every token line needs its word form in the 2nd column",
        ));
    }
    let label = fields[tag.index()];
    check_label(source, n, word, label, tag)?;
    Ok(Some((word, label)))
}

fn column_count_error(source: &Source, n: usize, line: &str, found: usize) -> DataError {
    let fix = if line.split_whitespace().count() == COLUMNS {
        "the columns seem separated by spaces; CoNLL-U needs tabs (or read the file with `format: conll`, `separator: whitespace`)"
    } else {
        "every token line needs exactly 10 tab-separated fields (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC); write '_' for empty ones"
    };
    source.error(
        n,
        format!("expected 10 tab-separated columns, found {found}"),
        fix,
    )
}

/// True for a word index (`3`), false for a range (`3-4`) or an empty node
/// (`3.1`); anything else is an error.
fn is_word_id(source: &Source, n: usize, id: &str) -> Result<bool, DataError> {
    if id.contains('-') || id.contains('.') {
        return Ok(false);
    }
    match id.parse::<usize>() {
        Ok(_) => Ok(true),
        Err(_) => Err(source.error(
            n,
            format!("ID '{id}' is not a word index, range (1-2) or empty node (1.1)"),
            "the first column must be the token's ID; comment lines must start with '#'",
        )),
    }
}

fn check_label(
    source: &Source,
    n: usize,
    word: &str,
    label: &str,
    tag: ConlluTag,
) -> Result<(), DataError> {
    let missing = label.trim().is_empty() || (label == "_" && !tag.underscore_is_value());
    if missing {
        return Err(source.error(
            n,
            format!(
                "word '{word}' has no {} (column {} is '{label}')",
                tag.name(),
                tag.index() + 1
            ),
            "fill that column, or choose another with `tag_column:` (upos, xpos, deprel, ...)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{read_err, read_ok};
    use crate::data::{ConlluTag, DataFormat};

    const UPOS: DataFormat = DataFormat::Conllu {
        tag_column: ConlluTag::Upos,
    };

    fn token(id: &str, form: &str, upos: &str, xpos: &str, deprel: &str) -> String {
        format!("{id}\t{form}\t{form}\t{upos}\t{xpos}\t_\t0\t{deprel}\t_\t_\n")
    }

    fn sample() -> String {
        [
            "# sent_id = 1\n".to_owned(),
            "# text = Don't go.\n".to_owned(),
            token("1-2", "Don't", "_", "_", "_"),
            token("1", "Do", "AUX", "VBP", "aux"),
            token("2", "n't", "PART", "RB", "advmod"),
            token("3", "go", "VERB", "VB", "root"),
            token("3.1", "went", "_", "_", "_"),
            token("4", ".", "PUNCT", ".", "punct"),
            "\n".to_owned(),
            "\n".to_owned(),
            token("1", "Hi", "INTJ", "UH", "root"),
        ]
        .concat()
    }

    #[test]
    fn reads_words_skipping_comments_ranges_and_empty_nodes() {
        let corpus = read_ok(&UPOS, sample());
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[0].words, ["Do", "n't", "go", "."]);
        assert_eq!(corpus.units[0].labels, ["AUX", "PART", "VERB", "PUNCT"]);
        assert_eq!(corpus.units[0].line, 1);
        assert_eq!(corpus.units[1].words, ["Hi"]);
        assert_eq!(corpus.units[1].line, 11);
        assert_eq!(corpus.num_rows(), 5);
    }

    #[test]
    fn other_tag_columns() {
        let xpos = DataFormat::Conllu {
            tag_column: ConlluTag::Xpos,
        };
        assert_eq!(
            read_ok(&xpos, sample()).units[0].labels,
            ["VBP", "RB", "VB", "."]
        );
        let deprel = DataFormat::Conllu {
            tag_column: ConlluTag::Deprel,
        };
        assert_eq!(read_ok(&deprel, sample()).units[1].labels, ["root"]);
    }

    #[test]
    fn crlf_and_bom() {
        let text = format!("\u{feff}{}", sample().replace('\n', "\r\n"));
        let corpus = read_ok(&UPOS, text);
        assert_eq!(corpus.units[0].labels, ["AUX", "PART", "VERB", "PUNCT"]);
        assert_eq!(corpus.units[1].line, 11);
    }

    #[test]
    fn wrong_column_count() {
        let text = format!("{}1\tHi\tINTJ\n", token("1", "a", "X", "X", "x"));
        read_err(
            &UPOS,
            text,
            Some(2),
            &["expected 10 tab-separated columns, found 3", "'_'"],
        );
    }

    #[test]
    fn space_separated_columns_get_a_hint() {
        let text = "1 Hi hi INTJ UH _ 0 root _ _\n";
        read_err(
            &UPOS,
            text,
            Some(1),
            &["found 1", "separated by spaces", "tabs"],
        );
    }

    #[test]
    fn bad_id() {
        let text = format!("# c\n{}", token("x", "Hi", "INTJ", "UH", "root"));
        read_err(&UPOS, text, Some(2), &["ID 'x' is not a word index"]);
    }

    #[test]
    fn missing_tag() {
        let xpos = DataFormat::Conllu {
            tag_column: ConlluTag::Xpos,
        };
        let text = format!("\n{}", token("1", "Hi", "INTJ", "_", "root"));
        read_err(
            &xpos,
            text,
            Some(2),
            &["word 'Hi' has no XPOS", "`tag_column:`"],
        );
        let text = token("1", "Hi", "", "UH", "root");
        read_err(&UPOS, text, Some(1), &["word 'Hi' has no UPOS"]);
    }

    #[test]
    fn empty_form() {
        read_err(
            &UPOS,
            token("1", "", "X", "X", "x"),
            Some(1),
            &["FORM column (2nd) is empty"],
        );
    }

    /// Found by `conllu_reader_never_panics`: a label (or form) of spaces
    /// was read as a class of its own.
    #[test]
    fn a_label_or_form_of_spaces_is_missing() {
        let head = DataFormat::Conllu {
            tag_column: ConlluTag::Head,
        };
        let text = "1	go	go	VERB	VB	_	 	root	_	_
";
        read_err(&head, text, Some(1), &["word 'go' has no HEAD"]);
        read_err(
            &UPOS,
            token("1", "  ", "X", "X", "x"),
            Some(1),
            &["FORM column (2nd) is empty"],
        );
    }

    #[test]
    fn only_comments_is_an_error() {
        read_err(
            &UPOS,
            "# newdoc\n\n",
            None,
            &["no labelled units found", "conllu"],
        );
    }
}
