//! `format: tsv`: one text (or text pair) and one label per row.
//!
//! Fields are split at every tab and nothing else: no quote processing
//! (quotes stay part of the text), so a field can never hold a tab. This is
//! deliberate: CSV-style quoting rules differ between tools, and a plain
//! split makes a malformed row fail loudly instead of merging rows.

use super::source::Source;
use super::{DataError, Unit};

/// The `tsv` options of the spec.
pub(super) struct Options<'a> {
    pub text_column: &'a str,
    pub pair_column: Option<&'a str>,
    pub label_column: &'a str,
    pub header: bool,
}

/// Where the fields are, and how many a row must have.
struct Layout {
    text: usize,
    pair: Option<usize>,
    label: usize,
    /// Fields per row: the header's, or the first row's without a header.
    width: Option<usize>,
    /// Column names from the header, for messages.
    names: Option<Vec<String>>,
}

/// Reads every non-blank row after the header (if any) as one unit.
pub(super) fn read(source: &Source, options: &Options) -> Result<Vec<Unit>, DataError> {
    let mut rows = source.lines().filter(|(_, line)| !line.trim().is_empty());
    let mut layout = if options.header {
        match rows.next() {
            Some((n, header)) => Layout::from_header(source, n, header, options)?,
            None => return Ok(Vec::new()),
        }
    } else {
        Layout::from_indices(source, options)?
    };
    rows.map(|(n, line)| layout.read_row(source, n, line))
        .collect()
}

impl Layout {
    fn from_header(
        source: &Source,
        n: usize,
        header: &str,
        options: &Options,
    ) -> Result<Self, DataError> {
        let names: Vec<String> = header
            .split('\t')
            .map(|name| name.trim().to_owned())
            .collect();
        let find = |name: &str, option: &str| find_name(source, n, &names, name, option);
        Ok(Self {
            text: find(options.text_column, "text_column")?,
            pair: options
                .pair_column
                .map(|name| find(name, "pair_column"))
                .transpose()?,
            label: find(options.label_column, "label_column")?,
            width: Some(names.len()),
            names: Some(names),
        })
    }

    fn from_indices(source: &Source, options: &Options) -> Result<Self, DataError> {
        let index = |value: &str, option: &str| parse_index(source, value, option);
        Ok(Self {
            text: index(options.text_column, "text_column")?,
            pair: options
                .pair_column
                .map(|value| index(value, "pair_column"))
                .transpose()?,
            label: index(options.label_column, "label_column")?,
            width: None,
            names: None,
        })
    }

    fn read_row(&mut self, source: &Source, n: usize, line: &str) -> Result<Unit, DataError> {
        let fields: Vec<&str> = line.split('\t').collect();
        self.check_width(source, n, fields.len())?;
        let text = self.field(source, n, &fields, self.text, "text")?;
        let pair = match self.pair {
            Some(pair) => Some(self.field(source, n, &fields, pair, "text")?.to_owned()),
            None => None,
        };
        let label = self.field(source, n, &fields, self.label, "label")?.trim();
        Ok(Unit::sentence(text.to_owned(), pair, label.to_owned(), n))
    }

    /// Every row has as many fields as the header (or the first row); the
    /// first row without a header must reach every configured column.
    fn check_width(&mut self, source: &Source, n: usize, found: usize) -> Result<(), DataError> {
        let (expected, against) = match self.width {
            Some(width) => (
                width,
                if self.names.is_some() {
                    "the header"
                } else {
                    "the first row"
                },
            ),
            None => {
                self.width = Some(found);
                // Saturating: a spec may name the largest index there is.
                let needed = self
                    .text
                    .max(self.label)
                    .max(self.pair.unwrap_or(0))
                    .saturating_add(1);
                if found >= needed {
                    return Ok(());
                }
                (needed, "the configured columns need")
            }
        };
        if found == expected {
            return Ok(());
        }
        Err(source.error(
            n,
            format!("the row has {found} tab-separated field(s) but {against} {expected}"),
            "fields are split at every tab with no quote processing, so a text cannot contain a tab; give each row one field per column",
        ))
    }

    /// Field `index`, which must not be blank; `what` names it for messages.
    fn field<'a>(
        &self,
        source: &Source,
        n: usize,
        fields: &[&'a str],
        index: usize,
        what: &str,
    ) -> Result<&'a str, DataError> {
        let value = fields.get(index).copied().unwrap_or("");
        if !value.trim().is_empty() {
            return Ok(value);
        }
        Err(source.error(
            n,
            format!("empty {what} in column {}", self.describe(index)),
            format!("every row needs a non-empty {what}; fill it in or remove the row"),
        ))
    }

    fn describe(&self, index: usize) -> String {
        match self.names.as_ref().and_then(|names| names.get(index)) {
            Some(name) => format!("'{name}'"),
            None => index.to_string(),
        }
    }
}

/// The header position of `name`; missing or repeated names are errors
/// that list the header's columns.
fn find_name(
    source: &Source,
    n: usize,
    names: &[String],
    name: &str,
    option: &str,
) -> Result<usize, DataError> {
    let positions: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] == name.trim())
        .collect();
    match positions.as_slice() {
        [index] => Ok(*index),
        [] => Err(source.error(
            n,
            format!(
                "column '{name}' ({option}) is not in the header; available columns: {}",
                quoted_list(names)
            ),
            format!("set `{option}:` to one of them, or set `header: false` and give 0-based column indices"),
        )),
        _ => Err(source.error(
            n,
            format!("column '{name}' ({option}) appears {} times in the header", positions.len()),
            "rename the header's columns so that each name is unique",
        )),
    }
}

fn quoted_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    quoted.join(", ")
}

/// A 0-based column index, for files without a header.
fn parse_index(source: &Source, value: &str, option: &str) -> Result<usize, DataError> {
    value.trim().parse().map_err(|_| {
        DataError::file(
            &source.path,
            format!("`{option}: {value}` is not a column index, and the spec says the file has no header (`header: false`)"),
            format!("without a header give 0-based indices, e.g. `{option}: \"1\"`, or set `header: true` if the first row names the columns"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{read_err, read_ok};
    use crate::data::DataFormat;

    fn tsv(text: &str, pair: Option<&str>, label: &str, header: bool) -> DataFormat {
        DataFormat::Tsv {
            text_column: text.into(),
            pair_column: pair.map(Into::into),
            label_column: label.into(),
            header,
        }
    }

    fn default_tsv() -> DataFormat {
        tsv("text", None, "label", true)
    }

    #[test]
    fn reads_rows_by_header_names() {
        let text = "label\ttext\npositive\tA \"quoted\" film, fine.\n\nnegative \tBad.\n";
        let corpus = read_ok(&default_tsv(), text);
        assert_eq!(corpus.units.len(), 2);
        assert_eq!(corpus.units[0].text, "A \"quoted\" film, fine.");
        assert_eq!(corpus.units[0].labels, ["positive"]);
        assert_eq!(corpus.units[0].line, 2);
        assert!(corpus.units[0].words.is_empty());
        assert_eq!(corpus.units[1].labels, ["negative"]);
        assert_eq!(corpus.units[1].line, 4);
        assert_eq!(corpus.num_rows(), 2);
    }

    #[test]
    fn pairs_and_indices_without_header() {
        let format = tsv("1", Some("2"), "0", false);
        let corpus = read_ok(&format, "entail\tA man sleeps.\tA person rests.\n");
        assert_eq!(corpus.units[0].text, "A man sleeps.");
        assert_eq!(corpus.units[0].pair.as_deref(), Some("A person rests."));
        assert_eq!(corpus.units[0].labels, ["entail"]);
        assert_eq!(corpus.units[0].line, 1);
    }

    #[test]
    fn crlf_and_bom() {
        let corpus = read_ok(&default_tsv(), "\u{feff}label\ttext\r\n1.5\tHi there\r\n");
        assert_eq!(corpus.units[0].text, "Hi there");
        assert_eq!(corpus.units[0].labels, ["1.5"]);
    }

    #[test]
    fn missing_header_column_lists_available_ones() {
        read_err(
            &tsv("sentence", None, "label", true),
            "label\ttext\nx\ty\n",
            Some(1),
            &[
                "column 'sentence' (text_column) is not in the header",
                "available columns: 'label', 'text'",
            ],
        );
    }

    #[test]
    fn duplicate_header_column() {
        read_err(
            &default_tsv(),
            "text\ttext\tlabel\n",
            Some(1),
            &["appears 2 times"],
        );
    }

    #[test]
    fn wrong_field_count() {
        let text = "label\ttext\npos\tfine\npos\tone\ttab too many\n";
        read_err(
            &default_tsv(),
            text,
            Some(3),
            &[
                "3 tab-separated field(s) but the header 2",
                "no quote processing",
            ],
        );
        let format = tsv("1", None, "0", false);
        read_err(
            &format,
            "a\tb\nc\n",
            Some(2),
            &["1 tab-separated field(s) but the first row 2"],
        );
        read_err(
            &format,
            "\nc\n",
            Some(2),
            &["1 tab-separated field(s) but the configured columns need 2"],
        );
    }

    /// Found while fuzzing the options: the largest index overflowed the
    /// width check (a panic in a debug build; in a release one the row
    /// passed the check and failed later as an "empty text").
    #[test]
    fn the_largest_column_index_is_a_width_error_not_an_overflow() {
        let format = tsv("18446744073709551615", None, "0", false);
        read_err(
            &format,
            "a\tb\n",
            Some(1),
            &["2 tab-separated field(s) but the configured columns need 18446744073709551615"],
        );
    }

    #[test]
    fn empty_label_and_text() {
        read_err(
            &default_tsv(),
            "label\ttext\n \tfine\n",
            Some(2),
            &["empty label in column 'label'"],
        );
        read_err(
            &default_tsv(),
            "label\ttext\npos\t\n",
            Some(2),
            &["empty text in column 'text'"],
        );
    }

    #[test]
    fn names_without_header() {
        read_err(
            &tsv("text", None, "0", false),
            "a\tb\n",
            None,
            &["`text_column: text` is not a column index", "header: false"],
        );
    }

    #[test]
    fn header_only_is_an_error() {
        read_err(
            &default_tsv(),
            "label\ttext\n",
            None,
            &["no labelled units found", "tsv"],
        );
    }
}
