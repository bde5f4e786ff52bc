//! Atomic file output: a result is either complete or absent.
//!
//! Everything is written to a temporary file in the destination folder and
//! renamed into place, so a crash or a full disk never leaves a half-written
//! file under the final name.
//!
//! Temporary files are created with the mode an ordinary `open` would give
//! (0666 less the umask), not tempfile's private 0600: a store or a run
//! folder shared between users must stay readable by them.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically through `fill`, which gets a buffered writer.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".sieve-").suffix(".part");
    #[cfg(unix)]
    builder.permissions(umask_mode(0o666));
    let temp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let (file, temp_path) = temp.into_parts();
    let mut writer = std::io::BufWriter::new(file);
    fill(&mut writer)
        .and_then(|_| writer.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))?;
    temp_path
        .persist(path)
        .with_context(|| format!("cannot move the finished file to {}", path.display()))?;
    Ok(())
}

/// `mode` as a permission request; the kernel applies the umask to it when
/// the file or folder is created, as for any `open` or `mkdir`.
#[cfg(unix)]
pub fn umask_mode(mode: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(mode)
}

/// A staging folder beside `parent`'s final entry, created with the
/// umask's mode (not tempfile's private 0700).
pub fn staging_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    builder.permissions(umask_mode(0o777));
    builder
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a staging folder in {}", parent.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bug this guards: every output was created 0600 whatever the
    /// umask, so a store shared between users failed with "Permission
    /// denied".
    #[cfg(unix)]
    #[test]
    fn written_files_honour_the_umask_instead_of_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.json");
        write_atomic(&path, b"{}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // Whatever the umask of the test process, group and other get
        // what it allows, never a blanket 0600.
        let umask = current_umask();
        assert_eq!(mode, 0o666 & !umask, "mode {mode:o} with umask {umask:o}");
        let staged = staging_dir(dir.path(), "x").unwrap();
        let mode = std::fs::metadata(staged.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o777 & !umask, "folder mode {mode:o}");
    }

    /// The umask, read from /proc (no process-wide umask() call, which
    /// would race with other tests creating files).
    #[cfg(unix)]
    fn current_umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
    }

    #[test]
    fn writes_the_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files were left behind");
    }

    #[test]
    fn a_failing_writer_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"complete").unwrap();
        let result = write_atomic_with(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"complete");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
