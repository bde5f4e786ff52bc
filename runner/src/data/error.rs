//! The one error type of the readers. Every message names the file, the
//! line (when one is to blame), what is wrong and how to fix it, because the
//! person reading it is editing a data file or a spec, not debugging code.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A problem with a data file, shown as `FILE:LINE: PROBLEM; FIX` (or
/// `FILE: PROBLEM; FIX` when no single line is to blame).
#[derive(Debug, Error)]
#[error("{}: {problem}; {fix}", Location::new(.path, .line))]
pub struct DataError {
    /// The file at fault, as the reader was given it.
    pub path: PathBuf,
    /// 1-based line, when one line is to blame.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
    /// The operating-system error behind a failed read, if any.
    #[source]
    pub source: Option<std::io::Error>,
}

impl DataError {
    /// An error about one line of `path`.
    pub fn at(
        path: &Path,
        line: usize,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(path, Some(line), problem, fix)
    }

    /// An error about `path` as a whole (or its settings in the spec).
    pub fn file(path: &Path, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(path, None, problem, fix)
    }

    fn new(
        path: &Path,
        line: Option<usize>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            problem: problem.into(),
            fix: fix.into(),
            source: None,
        }
    }
}

/// `path:line` or `path`: the prefix editors and terminals make clickable.
struct Location<'a> {
    path: &'a Path,
    line: Option<usize>,
}

impl<'a> Location<'a> {
    fn new(path: &'a Path, line: &Option<usize>) -> Self {
        Self { path, line: *line }
    }
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}
