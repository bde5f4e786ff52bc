//! Content fingerprints for the activation store's cache key.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Files above this size are fingerprinted by size plus their first and last
/// mebibyte: hashing a 400 MB model on every run would cost seconds, and a
/// changed model almost surely changes its size, head or tail.
const FULL_HASH_LIMIT: u64 = 16 << 20;
const SAMPLE: u64 = 1 << 20;

/// sha256 of a file's content (sampled for large files), as hex.
pub fn fingerprint_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut hasher = Sha256::new();
    hasher.update(size.to_le_bytes());
    if size <= FULL_HASH_LIMIT {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)?;
        hasher.update(&bytes);
    } else {
        use std::io::{Seek, SeekFrom};
        let mut buffer = vec![0u8; SAMPLE as usize];
        file.read_exact(&mut buffer)?;
        hasher.update(&buffer);
        file.seek(SeekFrom::End(-(SAMPLE as i64)))?;
        file.read_exact(&mut buffer)?;
        hasher.update(&buffer);
    }
    Ok(hex(&hasher.finalize()))
}

/// Fingerprint of a file, or of every file in a folder (sorted by name).
pub fn fingerprint_path(path: &Path) -> Result<String> {
    if path.is_file() {
        return fingerprint_file(path);
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
        hasher.update(fingerprint_file(&entry)?.as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

/// sha256 of a string, as hex.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
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
}
