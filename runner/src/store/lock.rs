//! Advisory locks that let several processes (and several users) share
//! one store.
//!
//! Each entry has a lock file `<store>/<key>.lock` (created once, never
//! removed: removing it would let two processes hold "the" lock on two
//! different files). A reader of a finished entry holds it shared for as
//! long as it uses the entry, so the entry is never replaced under it. A
//! whole extraction holds it exclusively: a second run of the same entry
//! waits, then finds it finished and reuses it. Shards of a cluster job
//! hold it shared, so they fill `<key>.partial/` side by side while no
//! whole extraction or merge runs.
//!
//! The locks are `flock`-style (the standard library's `File::lock`): the
//! kernel drops them when a process dies, so a `.partial` folder found by
//! the holder of the exclusive lock was left by a process that is gone,
//! and is resumed. On NFS they need a server with lock support (any
//! NFSv4 server has it).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::info;

/// How an entry is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Reading a finished entry, or one shard among several writing.
    Shared,
    /// Writing, finishing or replacing the entry.
    Exclusive,
}

/// A held lock on one entry; released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

impl EntryLock {
    /// Takes the lock on `<dir>/<key>.lock`, waiting (and saying so in the
    /// log) while another process holds it in a conflicting mode.
    pub fn acquire(dir: &Path, key: &str, mode: LockMode, purpose: &str) -> Result<EntryLock> {
        let path = lock_path(dir, key);
        let file = open_lock_file(&path)?;
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                info!(
                    "waiting for another sieve process using {} (lock {}) before {purpose}",
                    dir.join(key).display(),
                    path.display()
                );
                match mode {
                    LockMode::Shared => file.lock_shared(),
                    LockMode::Exclusive => file.lock(),
                }
                .with_context(|| format!("cannot lock {}", path.display()))?;
                info!("{} is free; going on", path.display());
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot lock {} (does the file system support locks?)",
                        path.display()
                    )
                })
            }
        }
        Ok(EntryLock { _file: file })
    }
}

fn lock_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.lock"))
}

/// Opens (creating it if needed) the lock file. A lock file made by
/// another user may not be writable by this one: a lock on a read-only
/// handle works the same.
fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the store folder {}", dir.display()))?;
    }
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(file) => Ok(file),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => File::open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display())),
        Err(error) => {
            Err(error).with_context(|| format!("cannot create the lock file {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_mode(dir: &Path, mode: LockMode) -> bool {
        let file = open_lock_file(&lock_path(dir, "k")).unwrap();
        match mode {
            LockMode::Shared => file.try_lock_shared().is_ok(),
            LockMode::Exclusive => file.try_lock().is_ok(),
        }
    }

    #[test]
    fn shared_holders_coexist_and_keep_a_writer_out() {
        let dir = tempfile::tempdir().unwrap();
        let reader = EntryLock::acquire(dir.path(), "k", LockMode::Shared, "test").unwrap();
        assert!(try_mode(dir.path(), LockMode::Shared));
        assert!(!try_mode(dir.path(), LockMode::Exclusive));
        drop(reader);
        assert!(try_mode(dir.path(), LockMode::Exclusive));
    }

    #[test]
    fn a_writer_keeps_readers_out_until_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let writer = EntryLock::acquire(dir.path(), "k", LockMode::Exclusive, "test").unwrap();
        assert!(!try_mode(dir.path(), LockMode::Shared));
        let path = dir.path().to_path_buf();
        let waiting = std::thread::spawn(move || {
            EntryLock::acquire(&path, "k", LockMode::Shared, "test").map(|_| ())
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !waiting.is_finished(),
            "the reader must wait for the writer"
        );
        drop(writer);
        waiting.join().unwrap().unwrap();
    }
}
