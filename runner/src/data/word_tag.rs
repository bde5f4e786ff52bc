//! `format: word-tag`: one sentence per line, tokens `WORD/TAG` separated
//! by whitespace (the Penn Treebank / NeuroX tagged-text layout).

use super::source::Source;
use super::{DataError, Unit};

/// Reads every non-blank line as one tagged sentence.
pub(super) fn read(source: &Source, separator: &str) -> Result<Vec<Unit>, DataError> {
    check_separator(source, separator)?;
    source
        .lines()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| read_line(source, n, line, separator))
        .collect()
}

/// An empty separator would split nowhere, and one with whitespace could
/// never occur inside a whitespace-separated token.
fn check_separator(source: &Source, separator: &str) -> Result<(), DataError> {
    if separator.is_empty() || separator.chars().any(char::is_whitespace) {
        return Err(DataError::file(
            &source.path,
            format!("the word-tag separator {separator:?} is empty or holds whitespace"),
            "set `separator:` in the spec's `reader:` to the text between word and tag, e.g. \"/\" or \"_\"",
        ));
    }
    Ok(())
}

fn read_line(source: &Source, n: usize, line: &str, separator: &str) -> Result<Unit, DataError> {
    let mut words = Vec::new();
    let mut labels = Vec::new();
    for token in line.split_whitespace() {
        let (word, tag) = split_token(source, n, token, separator)?;
        words.push(word.to_owned());
        labels.push(tag.to_owned());
    }
    Ok(Unit::tagged(words, labels, n))
}

/// Splits at the last separator, so that words may contain it.
fn split_token<'a>(
    source: &Source,
    n: usize,
    token: &'a str,
    separator: &str,
) -> Result<(&'a str, &'a str), DataError> {
    let Some((word, tag)) = token.rsplit_once(separator) else {
        return Err(source.error(
            n,
            format!("token '{token}' has no '{separator}' separating word and tag"),
            format!("each token must be WORD{separator}TAG (split at the last '{separator}')"),
        ));
    };
    if word.is_empty() {
        return Err(source.error(
            n,
            format!("token '{token}' has an empty word before the last '{separator}'"),
            format!("each token must be WORD{separator}TAG with a non-empty word"),
        ));
    }
    if tag.is_empty() {
        return Err(source.error(
            n,
            format!("token '{token}' has an empty tag after the last '{separator}'"),
            format!("each token must be WORD{separator}TAG with a non-empty tag"),
        ));
    }
    Ok((word, tag))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{read_err, read_ok, word_tag};

    #[test]
    fn reads_sentences_and_splits_at_last_separator() {
        let corpus = read_ok(&word_tag(), "The/DT cat/NN\n\n1/2/CD a\\/b/SYM\n");
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[0].words, ["The", "cat"]);
        assert_eq!(corpus.units[0].labels, ["DT", "NN"]);
        assert_eq!(corpus.units[0].text, "The cat");
        assert_eq!(corpus.units[1].words, ["1/2", "a\\/b"]);
        assert_eq!(corpus.units[1].labels, ["CD", "SYM"]);
        assert_eq!(corpus.units[1].line, 3);
        assert_eq!(corpus.num_rows(), 4);
        assert_eq!(
            corpus.labels().collect::<Vec<_>>(),
            ["DT", "NN", "CD", "SYM"]
        );
    }

    #[test]
    fn tabs_and_runs_of_spaces_separate_tokens() {
        let corpus = read_ok(&word_tag(), "  a/X \t b/Y  \n");
        assert_eq!(corpus.units[0].words, ["a", "b"]);
    }

    #[test]
    fn custom_separator() {
        let format = crate::data::DataFormat::WordTag {
            separator: "_".into(),
        };
        let corpus = read_ok(&format, "New_York_NNP is_VBZ\n");
        assert_eq!(corpus.units[0].words, ["New_York", "is"]);
        assert_eq!(corpus.units[0].labels, ["NNP", "VBZ"]);
    }

    #[test]
    fn crlf_and_bom() {
        let corpus = read_ok(&word_tag(), "\u{feff}a/X b/Y\r\n\r\nc/Z\r\n");
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[0].words, ["a", "b"]);
        assert_eq!(corpus.units[0].labels, ["X", "Y"]);
        assert_eq!(corpus.units[1].labels, ["Z"]);
        assert_eq!(corpus.units[1].line, 3);
    }

    #[test]
    fn token_without_separator() {
        read_err(
            &word_tag(),
            "a/X\nb/Y foo c/Z\n",
            Some(2),
            &[
                "token 'foo' has no '/' separating word and tag",
                "WORD/TAG",
                "last '/'",
            ],
        );
    }

    #[test]
    fn empty_word_or_tag() {
        read_err(
            &word_tag(),
            "\n\na/X /Y\n",
            Some(3),
            &["token '/Y' has an empty word"],
        );
        read_err(
            &word_tag(),
            "a/X b/\n",
            Some(1),
            &["token 'b/' has an empty tag"],
        );
    }

    #[test]
    fn bad_separator() {
        let format = crate::data::DataFormat::WordTag {
            separator: "".into(),
        };
        read_err(
            &format,
            "a/X\n",
            None,
            &["separator \"\" is empty", "set `separator:`"],
        );
    }
}
