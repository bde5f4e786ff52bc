//! Logs to stderr and, for runs, to `run.log` in the output folder.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("SIEVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Logging for commands without an output folder.
pub fn init_stderr() {
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
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
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_target(false)
                .with_writer(Mutex::new(file)),
        )
        .try_init();
    Ok(())
}
