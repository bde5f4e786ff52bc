//! `format: parallel` (NeuroX): sentences in one file, tags in another,
//! line for line and token for token. Lines are paired by their number, so
//! a blank line must be blank in both files.

use super::source::Source;
use super::{DataError, Unit};

/// Pairs the lines of `sentences` and `labels`.
pub(super) fn read(sentences: &Source, labels: &Source) -> Result<Vec<Unit>, DataError> {
    let words: Vec<&str> = sentences.lines().map(|(_, line)| line).collect();
    let tags: Vec<&str> = labels.lines().map(|(_, line)| line).collect();
    check_line_counts(sentences, labels, content_len(&words), content_len(&tags))?;
    let mut units = Vec::new();
    for (i, (words, tags)) in words.iter().zip(&tags).enumerate() {
        if let Some(unit) = read_line(sentences, labels, i + 1, words, tags)? {
            units.push(unit);
        }
    }
    Ok(units)
}

/// Lines up to the last non-blank one: trailing blank lines do not count.
fn content_len(lines: &[&str]) -> usize {
    lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1)
}

fn check_line_counts(
    sentences: &Source,
    labels: &Source,
    sentence_lines: usize,
    label_lines: usize,
) -> Result<(), DataError> {
    if sentence_lines == label_lines {
        return Ok(());
    }
    Err(DataError::file(
        &sentences.path,
        format!(
            "{sentence_lines} lines of sentences but the labels file {} has {label_lines} lines",
            labels.path.display()
        ),
        "the two files must line up, one sentence and its tags per line; check that `labels:` names the matching file",
    ))
}

/// One unit, or `None` when the line is blank in both files.
fn read_line(
    sentences: &Source,
    labels: &Source,
    n: usize,
    line: &str,
    tag_line: &str,
) -> Result<Option<Unit>, DataError> {
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let tags: Vec<String> = tag_line.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() && tags.is_empty() {
        return Ok(None);
    }
    if words.len() != tags.len() {
        return Err(sentences.error(
            n,
            format!(
                "{} word(s) but {}:{n} has {} label(s)",
                words.len(),
                labels.path.display(),
                tags.len()
            ),
            "each line of the labels file needs one tag per word of the same line, separated by spaces",
        ));
    }
    Ok(Some(Unit::tagged(words, tags, n)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_message, Files};
    use crate::data::{read_corpus, DataFormat};

    fn parallel(files: &Files, sentences: &str, labels: &str) -> (std::path::PathBuf, DataFormat) {
        let data = files.write("sentences.txt", sentences);
        let labels = files.write("labels.txt", labels);
        (data, DataFormat::Parallel { labels })
    }

    #[test]
    fn pairs_lines_and_skips_blank_ones() {
        let files = Files::new();
        let (data, format) = parallel(&files, "The cat\n\nIt  sat .\n\n", "DT NN\n\nPRP VBD .\n");
        let corpus = read_corpus(&format, &data).expect("reads");
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[1].words, ["It", "sat", "."]);
        assert_eq!(corpus.units[1].labels, ["PRP", "VBD", "."]);
        assert_eq!(corpus.units[1].line, 3);
        assert_eq!(corpus.path, data);
    }

    #[test]
    fn crlf_and_bom_in_either_file() {
        let files = Files::new();
        let (data, format) = parallel(&files, "\u{feff}a b\r\nc\r\n", "X Y\nZ\n");
        let corpus = read_corpus(&format, &data).expect("reads");
        assert_eq!(corpus.units[0].words, ["a", "b"]);
        assert_eq!(corpus.units[1].labels, ["Z"]);
        let (data, format) = parallel(&files, "a b\nc\n", "\u{feff}X Y\r\nZ\r\n");
        let corpus = read_corpus(&format, &data).expect("reads");
        assert_eq!(corpus.units[0].labels, ["X", "Y"]);
    }

    #[test]
    fn token_count_mismatch() {
        let files = Files::new();
        let (data, format) = parallel(&files, "a b\nc d e\n", "X Y\nZ W\n");
        let err = read_corpus(&format, &data).expect_err("mismatch");
        assert_message(
            &err,
            &data,
            Some(2),
            &["3 word(s) but", "labels.txt:2 has 2 label(s)"],
        );
    }

    #[test]
    fn blank_in_one_file_only() {
        let files = Files::new();
        let (data, format) = parallel(&files, "a\n\nb\n", "X\nY\nZ\n");
        let err = read_corpus(&format, &data).expect_err("mismatch");
        assert_message(&err, &data, Some(2), &["0 word(s) but", "has 1 label(s)"]);
    }

    #[test]
    fn line_count_mismatch() {
        let files = Files::new();
        let (data, format) = parallel(&files, "a\nb\n\n", "X\n");
        let err = read_corpus(&format, &data).expect_err("mismatch");
        assert_message(
            &err,
            &data,
            None,
            &["2 lines of sentences", "labels.txt has 1 lines", "line up"],
        );
    }

    #[test]
    fn missing_labels_file() {
        let files = Files::new();
        let data = files.write("sentences.txt", "a\n");
        let labels = files.path().join("nope.txt");
        let format = DataFormat::Parallel {
            labels: labels.clone(),
        };
        let err = read_corpus(&format, &data).expect_err("missing");
        assert_message(&err, &labels, None, &["does not exist"]);
    }
}
