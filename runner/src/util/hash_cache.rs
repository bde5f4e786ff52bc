//! Remembered content hashes, so a 400 MB model is read in full only when
//! it changes.
//!
//! An entry is used only while the file's size, modification time, change
//! time, inode and device are all what they were when it was hashed; any
//! difference (a copy, an edit, a `touch`, a replacement by rename) hashes
//! the file again in full. A file modified in the last two seconds is not
//! remembered: its timestamp could still be shared by a later edit within
//! the file system's time resolution.
//!
//! The cache is one JSON file (default `$XDG_CACHE_HOME/sieve/file-hashes.json`,
//! else `~/.cache/sieve/...`; `SIEVE_HASH_CACHE=PATH` moves it and
//! `SIEVE_HASH_CACHE=off` disables it). Processes sharing it write it
//! atomically; when two write at once one's new entries are lost, which
//! only costs a later re-hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;

/// Environment variable: the cache file, or `off`.
pub const HASH_CACHE_ENV: &str = "SIEVE_HASH_CACHE";

/// Entries kept at most; the oldest are dropped beyond it.
const MAX_ENTRIES: usize = 20_000;

/// How recent a modification may be for its hash to be remembered.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub modified_ns: i128,
    pub changed_ns: i128,
    pub inode: u64,
    pub device: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self::from_metadata(&meta))
    }

    #[cfg(unix)]
    fn from_metadata(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            size: meta.len(),
            modified_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            changed_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            inode: meta.ino(),
            device: meta.dev(),
        }
    }

    #[cfg(not(unix))]
    fn from_metadata(meta: &std::fs::Metadata) -> Self {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        FileStamp {
            size: meta.len(),
            modified_ns,
            changed_ns: modified_ns,
            inode: 0,
            device: 0,
        }
    }

    /// True when the file was modified so recently that a further edit
    /// could keep the same timestamp.
    fn is_racy(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now - self.modified_ns.max(self.changed_ns) < RACY_WINDOW.as_nanos() as i128
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: FileStamp,
    sha256: String,
    /// Seconds since the epoch when the entry was last used, for pruning.
    used: u64,
}

/// The hash cache of one process (see the module notes).
pub struct HashCache {
    file: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    dirty: bool,
    entries: BTreeMap<PathBuf, Entry>,
}

impl HashCache {
    /// The cache at its default place (or none, see [`HASH_CACHE_ENV`]).
    pub fn open_default() -> Self {
        Self {
            file: default_file(),
            state: Mutex::new(State::default()),
        }
    }

    /// A cache kept in `file`.
    pub fn at(file: &Path) -> Self {
        Self {
            file: Some(file.to_path_buf()),
            state: Mutex::new(State::default()),
        }
    }

    /// The remembered hash of `path` if the file is unchanged since.
    pub fn lookup(&self, path: &Path, stamp: &FileStamp) -> Option<String> {
        let mut state = self.loaded_state()?;
        let entry = state.entries.get_mut(path)?;
        if entry.stamp != *stamp {
            return None;
        }
        entry.used = now_seconds();
        Some(entry.sha256.clone())
    }

    /// Remembers the hash of `path` as it is at `stamp`.
    pub fn remember(&self, path: &Path, stamp: &FileStamp, sha256: &str) {
        if stamp.is_racy() {
            return;
        }
        let Some(mut state) = self.loaded_state() else {
            return;
        };
        state.entries.insert(
            path.to_path_buf(),
            Entry {
                stamp: *stamp,
                sha256: sha256.to_string(),
                used: now_seconds(),
            },
        );
        state.dirty = true;
    }

    /// Writes new entries back; failures only cost re-hashing later.
    pub fn save(&self) {
        let (Some(file), Ok(mut state)) = (&self.file, self.state.lock()) else {
            return;
        };
        if !state.dirty {
            return;
        }
        // Keep what other processes added since we read the file.
        for (path, entry) in read_entries(file) {
            state.entries.entry(path).or_insert(entry);
        }
        prune(&mut state.entries);
        match serde_json::to_vec(&state.entries) {
            Ok(bytes) => {
                if let Err(error) = write_atomic(file, &bytes) {
                    tracing::debug!("hash cache not saved: {error:#}");
                }
            }
            Err(error) => tracing::debug!("hash cache not saved: {error}"),
        }
        state.dirty = false;
    }

    fn loaded_state(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        let file = self.file.as_ref()?;
        let mut state = self.state.lock().ok()?;
        if !state.loaded {
            state.entries = read_entries(file);
            state.loaded = true;
        }
        Some(state)
    }
}

impl Drop for HashCache {
    fn drop(&mut self) {
        self.save();
    }
}

fn default_file() -> Option<PathBuf> {
    match std::env::var_os(HASH_CACHE_ENV) {
        Some(value) if value == "off" => return None,
        Some(value) if !value.is_empty() => return Some(PathBuf::from(value)),
        _ => {}
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("sieve").join("file-hashes.json"))
}

/// The entries of a cache file; an unreadable or damaged file is empty.
fn read_entries(file: &Path) -> BTreeMap<PathBuf, Entry> {
    std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Drops entries of files that are gone, then the least recently used.
fn prune(entries: &mut BTreeMap<PathBuf, Entry>) {
    entries.retain(|path, _| path.exists());
    if entries.len() <= MAX_ENTRIES {
        return;
    }
    let mut used: Vec<u64> = entries.values().map(|e| e.used).collect();
    used.sort_unstable();
    let cutoff = used[used.len() - MAX_ENTRIES];
    entries.retain(|_, e| e.used >= cutoff);
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp of `path` as if it had been last changed a minute ago
    /// (outside the racy window), for `remember`.
    fn settled_stamp(path: &Path) -> FileStamp {
        let mut stamp = FileStamp::of(path).unwrap();
        stamp.modified_ns -= 60_000_000_000;
        stamp.changed_ns -= 60_000_000_000;
        stamp
    }

    #[test]
    fn a_remembered_hash_is_used_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"one").unwrap();
        let stamp = settled_stamp(&path);
        let cache_file = dir.path().join("cache.json");
        {
            let cache = HashCache::at(&cache_file);
            assert_eq!(cache.lookup(&path, &stamp), None);
            cache.remember(&path, &stamp, "h1");
        }
        let cache = HashCache::at(&cache_file);
        assert_eq!(cache.lookup(&path, &stamp).as_deref(), Some("h1"));
    }

    #[test]
    fn a_same_size_edit_with_the_old_mtime_still_misses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"one").unwrap();
        let stamp = settled_stamp(&path);
        let cache = HashCache::at(&dir.path().join("cache.json"));
        cache.remember(&path, &stamp, "h1");
        // Same length, modification time put back: only the change time
        // (which no user call can set) tells.
        std::fs::write(&path, b"two").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_nanos(stamp.modified_ns as u64);
        file.set_modified(old).unwrap();
        let edited = FileStamp::of(&path).unwrap();
        assert_eq!(
            (edited.size, edited.modified_ns),
            (stamp.size, stamp.modified_ns)
        );
        assert_eq!(cache.lookup(&path, &edited), None);
    }

    #[test]
    fn a_just_written_file_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh");
        std::fs::write(&path, b"x").unwrap();
        let stamp = FileStamp::of(&path).unwrap();
        let cache = HashCache::at(&dir.path().join("cache.json"));
        cache.remember(&path, &stamp, "h");
        assert_eq!(cache.lookup(&path, &stamp), None);
    }
}
