//! Content fingerprints for cache keys: the sha256 of every byte of every
//! input, so that a changed model or data file is always noticed.
//!
//! Hashing a 400 MB model on every run would cost about a second, so the
//! hash of each file is remembered in a small cache keyed by the file's
//! path, size, modification time, change time and inode
//! ([`super::hash_cache`]). Any change to any of those hashes the file
//! again in full; nothing is ever sampled.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::hash_cache::{FileStamp, HashCache};

/// Hashing a file at least this large is worth a log line (it takes a
/// noticeable moment, once).
const LOGGED_SIZE: u64 = 64 << 20;

/// sha256 of a file's whole content, as hex (what `sha256sum` prints).
pub fn fingerprint_file(path: &Path) -> Result<String> {
    let cache = HashCache::open_default();
    fingerprint_file_with(path, &cache)
}

/// [`fingerprint_file`] through an explicit cache (tests point it at a
/// temporary file).
pub fn fingerprint_file_with(path: &Path, cache: &HashCache) -> Result<String> {
    let canonical =
        std::fs::canonicalize(path).with_context(|| format!("cannot open {}", path.display()))?;
    let before = FileStamp::of(&canonical)?;
    if let Some(hash) = cache.lookup(&canonical, &before) {
        return Ok(hash);
    }
    let started = std::time::Instant::now();
    let hash = sha256_of_file(&canonical)?;
    if before.size >= LOGGED_SIZE {
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "fingerprinted {} in full: {:.0} MB in {seconds:.2} s ({:.0} MB/s; kept until the file changes)",
            path.display(),
            before.size as f64 / 1e6,
            before.size as f64 / 1e6 / seconds.max(1e-9)
        );
    }
    let after = FileStamp::of(&canonical)?;
    if before != after {
        bail!(
            "{} changed while it was being read; wait until whatever writes it has finished, then run again",
            path.display()
        );
    }
    cache.remember(&canonical, &after, &hash);
    Ok(hash)
}

/// Fingerprint of a file, or of every file in a folder (sorted by name;
/// sub-folders are not read by any backend and are left out).
pub fn fingerprint_path(path: &Path) -> Result<String> {
    fingerprint_path_with(path, &HashCache::open_default())
}

/// [`fingerprint_path`] through an explicit cache (one cache for all the
/// inputs of a run: the cache file is read and written once).
pub fn fingerprint_path_with(path: &Path, cache: &HashCache) -> Result<String> {
    if path.is_file() {
        return fingerprint_file_with(path, cache);
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut hasher = Sha256::new();
    for entry in entries {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
        hasher.update(name.unwrap_or_default().as_bytes());
        hasher.update(fingerprint_file_with(&entry, cache)?.as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

/// Streams the whole file through sha256 (no cache).
pub fn sha256_of_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// sha256 of a string, as hex.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// A canonical JSON text of `value`: object keys sorted at every depth, no
/// whitespace. Cache keys are built from it, never from `Debug` text,
/// which is neither stable across compiler versions nor complete.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<String> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::to_string(&sorted(value))?)
}

fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_fingerprint_changes_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"one").unwrap();
        let before = fingerprint_path(dir.path()).unwrap();
        assert_eq!(before, fingerprint_path(dir.path()).unwrap());
        std::fs::write(dir.path().join("a"), b"two").unwrap();
        assert_ne!(before, fingerprint_path(dir.path()).unwrap());
    }

    #[test]
    fn sha256_of_empty_string_is_the_known_value() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// The bug this guards: files over 16 MiB were fingerprinted by their
    /// size, head and tail, so an edit in the middle went unnoticed.
    #[test]
    fn an_edit_in_the_middle_of_a_large_file_changes_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HashCache::at(&dir.path().join("hashes.json"));
        let path = dir.path().join("model.safetensors");
        let mut bytes = vec![7u8; 40 << 20];
        std::fs::write(&path, &bytes).unwrap();
        let before = fingerprint_file_with(&path, &cache).unwrap();
        bytes[20 << 20] = 8;
        std::fs::write(&path, &bytes).unwrap();
        let after = fingerprint_file_with(&path, &cache).unwrap();
        assert_ne!(before, after);
        assert_eq!(after, hex(&Sha256::digest(&bytes)));
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HashCache::at(&dir.path().join("hashes.json"));
        let path = dir.path().join("data.txt");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            fingerprint_file_with(&path, &cache).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[{"d":1,"c":2}]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":[{"c":2,"d":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
        assert_eq!(
            canonical_json(&a).unwrap(),
            r#"{"a":{"x":[{"c":2,"d":1}],"y":2},"b":1}"#
        );
    }
}
