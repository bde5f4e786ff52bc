//! Helpers for the readers' unit tests: hand-made files in a temporary
//! folder, and checks that an error names file, line and problem.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{read_corpus, Corpus, DataError, DataFormat};

pub fn word_tag() -> DataFormat {
    DataFormat::WordTag {
        separator: "/".into(),
    }
}

/// A temporary folder that lives as long as the test needs its files.
pub struct Files {
    dir: TempDir,
}

impl Files {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Reads `contents` (written as `data.txt`) as `format`; panics on error.
pub fn read_ok(format: &DataFormat, contents: impl AsRef<[u8]>) -> Corpus {
    let files = Files::new();
    let path = files.write("data.txt", contents);
    match read_corpus(format, &path) {
        Ok(corpus) => corpus,
        Err(err) => panic!("unexpected error: {err}"),
    }
}

/// Reads `contents` as `format`, expecting an error at `line` (or about the
/// whole file) whose message holds every phrase.
pub fn read_err(
    format: &DataFormat,
    contents: impl AsRef<[u8]>,
    line: Option<usize>,
    phrases: &[&str],
) -> DataError {
    let files = Files::new();
    let path = files.write("data.txt", contents);
    let err = match read_corpus(format, &path) {
        Ok(_) => panic!("expected an error mentioning {phrases:?}"),
        Err(err) => err,
    };
    assert_message(&err, &path, line, phrases);
    err
}

/// Checks `FILE:LINE: ` (or `FILE: `) at the start and every phrase.
pub fn assert_message(err: &DataError, path: &Path, line: Option<usize>, phrases: &[&str]) {
    let message = err.to_string();
    let prefix = match line {
        Some(line) => format!("{}:{line}: ", path.display()),
        None => format!("{}: ", path.display()),
    };
    assert!(
        message.starts_with(&prefix),
        "{message:?} should start with {prefix:?}"
    );
    assert_eq!(err.line, line, "{message}");
    for phrase in phrases {
        assert!(
            message.contains(phrase),
            "{message:?} should contain {phrase:?}"
        );
    }
    assert!(
        message.contains("; "),
        "{message:?} should say how to fix it"
    );
}
