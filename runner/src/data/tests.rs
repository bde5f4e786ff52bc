//! Tests common to every format: reading files, the spec's `reader:` block
//! and path resolution. Each format's own tests live in its file.

use std::path::{Path, PathBuf};

use super::test_util::{assert_message, read_err, word_tag, Files};
use super::{read_corpus, ColumnSeparator, ConlluTag, DataFormat};

#[test]
fn missing_file_names_the_path() {
    let files = Files::new();
    let path = files.path().join("train.txt");
    let err = read_corpus(&word_tag(), &path).expect_err("missing");
    assert_message(&err, &path, None, &["does not exist", "relative paths"]);
    assert!(err.source.is_some());
}

#[test]
fn folder_is_not_a_file() {
    let files = Files::new();
    let err = read_corpus(&word_tag(), files.path()).expect_err("folder");
    assert_message(&err, files.path(), None, &["is a folder"]);
}

#[test]
fn invalid_utf8_names_the_line() {
    let err = read_err(
        &word_tag(),
        b"a/X\nb/Y\nc\xE9/Z\n",
        Some(3),
        &["invalid UTF-8 at byte 2", "save the file as UTF-8"],
    );
    assert_eq!(err.line, Some(3));
    read_err(
        &word_tag(),
        b"\xEF\xBB\xBF\xFFa/X\n",
        Some(1),
        &["invalid UTF-8 at byte 1"],
    );
}

#[test]
fn empty_file_is_an_error() {
    read_err(
        &word_tag(),
        "",
        None,
        &["no labelled units found", "word-tag"],
    );
    read_err(
        &word_tag(),
        "\u{feff}\r\n \r\n",
        None,
        &["no labelled units found"],
    );
}

fn parse(yaml: &str) -> Result<DataFormat, String> {
    serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
}

#[test]
fn yaml_defaults() {
    assert_eq!(parse("format: word-tag").unwrap(), word_tag());
    assert_eq!(
        parse("format: conllu").unwrap(),
        DataFormat::Conllu {
            tag_column: ConlluTag::Upos
        }
    );
    assert_eq!(
        parse("format: conll").unwrap(),
        DataFormat::Conll {
            word_column: 0,
            tag_column: 1,
            separator: ColumnSeparator::Whitespace,
            skip_docstart: true,
        }
    );
    assert_eq!(
        parse("format: tsv").unwrap(),
        DataFormat::Tsv {
            text_column: "text".into(),
            pair_column: None,
            label_column: "label".into(),
            header: true,
        }
    );
}

#[test]
fn yaml_options() {
    assert_eq!(
        parse("{format: word-tag, separator: _}").unwrap(),
        DataFormat::WordTag {
            separator: "_".into()
        }
    );
    assert_eq!(
        parse("{format: conllu, tag_column: xpos}").unwrap(),
        DataFormat::Conllu {
            tag_column: ConlluTag::Xpos
        }
    );
    assert_eq!(
        parse(
            "{format: conll, word_column: 1, tag_column: 3, separator: tab, skip_docstart: false}"
        )
        .unwrap(),
        DataFormat::Conll {
            word_column: 1,
            tag_column: 3,
            separator: ColumnSeparator::Tab,
            skip_docstart: false,
        }
    );
    assert_eq!(
        parse("{format: parallel, labels: tags.txt}").unwrap(),
        DataFormat::Parallel {
            labels: PathBuf::from("tags.txt")
        }
    );
    assert_eq!(
        parse("{format: tsv, header: false, text_column: 1, pair_column: \"2\", label_column: 0}")
            .unwrap(),
        DataFormat::Tsv {
            text_column: "1".into(),
            pair_column: Some("2".into()),
            label_column: "0".into(),
            header: false,
        }
    );
}

#[test]
fn yaml_errors() {
    assert!(parse("format: csv").is_err());
    assert!(
        parse("{format: conllu, separator: tab}").is_err(),
        "unknown field"
    );
    assert!(parse("{format: conllu, tag_column: pos}").is_err());
    assert!(parse("format: parallel").is_err(), "labels is required");
}

#[test]
fn resolve_paths_makes_labels_absolute() {
    let mut format = DataFormat::Parallel {
        labels: "tags.txt".into(),
    };
    format.resolve_paths(Path::new("/specs/pos"));
    assert_eq!(
        format,
        DataFormat::Parallel {
            labels: "/specs/pos/tags.txt".into()
        }
    );
    format.resolve_paths(Path::new("/elsewhere"));
    assert_eq!(
        format,
        DataFormat::Parallel {
            labels: "/specs/pos/tags.txt".into()
        }
    );
    assert_eq!(format.companion_files(), [Path::new("/specs/pos/tags.txt")]);
}

#[test]
fn word_level_formats() {
    assert!(word_tag().is_word_level());
    assert!(parse("format: conll").unwrap().is_word_level());
    assert!(!parse("format: tsv").unwrap().is_word_level());
}
