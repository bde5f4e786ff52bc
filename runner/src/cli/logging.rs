//! Logs to stderr and, for runs, to `run.log` in the output folder.
//!
//! Colour goes to stderr only when it is a terminal and `NO_COLOR` is unset
//! (https://no-color.org): escape codes in a pipe, a file or a Slurm log are
//! noise. `run.log` never has colour.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

/// Events with this target go to `run.log` only: `main` prints the final
/// error to stderr itself, and the log file should still record it.
const FILE_ONLY: &str = "sieve::file_only";

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("SIEVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Whether stderr gets ANSI colours: a terminal, and `NO_COLOR` unset or
/// empty (the convention's wording: "present and not an empty string"
/// turns colour off).
pub fn stderr_colour() -> bool {
    colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn colour_allowed(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// The stderr layer: no colour off a terminal, and not the events meant
/// for the log file only.
fn stderr_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        // Between redraws of the progress bars, so neither garbles the other.
        .with_writer(crate::util::progress::log_writer)
        .with_ansi(stderr_colour())
        .with_target(false)
        .with_filter(filter_fn(|meta| meta.target() != FILE_ONLY))
}

/// Logging for commands without an output folder.
pub fn init_stderr() {
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(stderr_layer())
        .try_init();
}

/// Logging for a run: stderr plus `<output>/run.log` (appended, so a
/// resumed run keeps the history of the interrupted one).
pub fn init_with_file(output: &Path) -> Result<()> {
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create the output folder {}", output.display()))?;
    let path = output.join("run.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(stderr_layer())
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_target(false)
                .with_writer(Mutex::new(file)),
        )
        .try_init();
    Ok(())
}

/// Records the error a command failed with in `run.log` (when the command
/// has one) without printing it to stderr: `main` prints it there once.
pub fn log_failure(error: &anyhow::Error) {
    tracing::error!(target: FILE_ONLY, "{error:#}");
}

#[cfg(test)]
mod tests {
    use super::colour_allowed;
    use std::ffi::OsStr;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some(OsStr::new(""))));
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        assert!(!colour_allowed(false, None));
    }
}
