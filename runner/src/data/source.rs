//! Reading a whole data file as text: BOM, CRLF and encoding handled once
//! here so that every format sees clean lines with their true numbers.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::DataError;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A data file read into memory (they are small: tens of MB at most).
pub(crate) struct Source {
    pub path: PathBuf,
    text: String,
}

impl Source {
    /// Reads `path` fully; a missing file, a folder or invalid UTF-8 is an
    /// error naming the path (and the line, for bad bytes).
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = read_bytes(path)?;
        Self::from_bytes(path, &bytes)
    }

    /// A file's contents already in memory, `path` naming it in errors
    /// (the fuzz tests feed the readers this way, without a file).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, DataError> {
        let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        let text = decode(path, bytes)?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Every line with its 1-based number, without `\n` or `\r\n`.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text
            .lines()
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .enumerate()
            .map(|(i, line)| (i + 1, line))
    }

    /// An error about line `line` of this file.
    pub fn error(
        &self,
        line: usize,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> DataError {
        DataError::at(&self.path, line, problem, fix)
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    if path.is_dir() {
        return Err(DataError::file(
            path,
            "is a folder, not a data file",
            "point the spec at the file itself",
        ));
    }
    std::fs::read(path).map_err(|err| {
        let mut error = if err.kind() == ErrorKind::NotFound {
            DataError::file(
                path,
                "the data file does not exist",
                "check the path (relative paths in a spec are resolved against the spec's folder)",
            )
        } else {
            DataError::file(
                path,
                format!("the data file cannot be read ({err})"),
                "check that it is a readable file",
            )
        };
        error.source = Some(err);
        error
    })
}

/// Decodes UTF-8, pointing at the line and byte of the first bad sequence.
fn decode(path: &Path, bytes: &[u8]) -> Result<String, DataError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(err) => {
            let good = &bytes[..err.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = good.len() - line_start + 1;
            Err(DataError::at(
                path,
                line,
                format!("invalid UTF-8 at byte {column} of the line"),
                "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`)",
            ))
        }
    }
}
