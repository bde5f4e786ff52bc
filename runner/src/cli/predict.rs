//! `sieve predict MODEL_DIR [FILE]`

use std::io::{BufRead, BufWriter, Read};
use std::path::Path;

use anyhow::{Context, Result};

use crate::slim::{OutputFormat, SlimModel};

pub fn predict(
    model_dir: &Path,
    file: Option<&Path>,
    format: OutputFormat,
    plugins: Option<&Path>,
) -> Result<()> {
    super::logging::init_stderr();
    let model = SlimModel::open(model_dir, plugins)?;
    let lines = read_lines(file)?;
    let labels = model.predict(&lines)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    model.write(&lines, &labels, format, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// Lines of `file`, or of standard input without one (or with `-`).
pub(super) fn read_lines(file: Option<&Path>) -> Result<Vec<String>> {
    let mut text = String::new();
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_string(&mut text)
                .context("cannot read standard input as UTF-8 text")?;
        }
    }
    Ok(text
        .as_bytes()
        .lines()
        .map(|l| l.map(|l| l.trim_end_matches('\r').to_string()))
        .collect::<std::io::Result<Vec<_>>>()?)
}
