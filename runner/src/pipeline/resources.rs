//! Memory and disk: the in-memory budget a run uses when the spec does not
//! set one, and the checks that refuse, before extraction starts, a run
//! that cannot fit.
//!
//! Activations are held in memory as f32 only while a matrix (a column
//! subset of one split) fits in `store.in_memory_mb`; larger ones are read
//! from the store a block at a time. With the budget fixed at 2 GiB, a
//! 1M-word corpus could still hold several such matrices at once and take
//! a 16 GB laptop past its memory. The default therefore follows the memory
//! that is actually available.

use std::path::Path;

use anyhow::{bail, Result};

use crate::spec::LoadedSpec;

/// The budget on a machine with plenty of memory (the earlier fixed
/// default: results on such machines are the same as before).
pub const MAX_DEFAULT_MB: usize = 2048;

/// The least budget derived; a smaller machine streams nearly everything.
const MIN_DEFAULT_MB: usize = 64;

/// The share of the available memory one matrix may take: a probe bank,
/// the held columns and a selector's row sample can be alive at once.
const AVAILABLE_SHARE: usize = 6;

/// The in-memory budget of a run, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub mb: usize,
    /// `None`: set by the spec. `Some(available)`: derived from this many
    /// MiB of available memory.
    pub derived_from_mb: Option<usize>,
}

impl MemoryBudget {
    pub fn of(loaded: &LoadedSpec) -> MemoryBudget {
        match loaded.spec.store.in_memory_mb {
            Some(mb) => MemoryBudget {
                mb,
                derived_from_mb: None,
            },
            None => Self::derived(available_memory_mb()),
        }
    }

    fn derived(available_mb: Option<usize>) -> MemoryBudget {
        let mb = available_mb.map_or(MAX_DEFAULT_MB, |available| {
            (available / AVAILABLE_SHARE).clamp(MIN_DEFAULT_MB, MAX_DEFAULT_MB)
        });
        MemoryBudget {
            mb,
            derived_from_mb: available_mb,
        }
    }

    /// One line for the log (and, when the budget is below the usual
    /// default, for the report's warnings).
    pub fn describe(&self) -> String {
        match self.derived_from_mb {
            None => format!("in-memory budget {} MiB per matrix (store.in_memory_mb)", self.mb),
            Some(available) => format!(
                "in-memory budget {} MiB per matrix, derived from the {available} MiB of memory available (set store.in_memory_mb to fix it); larger matrices are streamed from the store",
                self.mb
            ),
        }
    }

    /// True when the derived budget is below the default of machines with
    /// plenty of memory: shuffled probes on streamed matrices visit rows in
    /// another order, so results can differ from such a machine's.
    pub fn is_reduced(&self) -> bool {
        self.derived_from_mb.is_some() && self.mb < MAX_DEFAULT_MB
    }
}

/// `MemAvailable` of /proc/meminfo in MiB (Linux); `None` elsewhere.
pub fn available_memory_mb() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Free bytes for an unprivileged user on the file system holding `path`
/// (or its nearest existing ancestor).
#[cfg(unix)]
pub fn free_disk_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stats` a
    // properly sized, writable statvfs struct.
    let status = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    (status == 0).then(|| stats.f_bavail as u64 * stats.f_frsize as u64)
}

#[cfg(not(unix))]
pub fn free_disk_bytes(_path: &Path) -> Option<u64> {
    None
}

/// What an extraction will need: its store size and one chunk in memory.
pub struct ExtractionNeeds {
    pub store_bytes: u64,
    pub chunk_bytes: u64,
}

impl ExtractionNeeds {
    pub fn new(rows: usize, cols: usize, dtype_bytes: usize, chunk_rows: usize) -> Self {
        ExtractionNeeds {
            store_bytes: (rows as u64) * (cols as u64) * dtype_bytes as u64,
            // The backend's f32 rows of one chunk plus their stored copy.
            chunk_bytes: (chunk_rows.min(rows.max(1)) as u64) * (cols as u64) * 4 * 2,
        }
    }

    /// Refuses, before any extraction, a run whose store does not fit on
    /// its disk or whose chunk does not fit in memory.
    pub fn check(
        &self,
        store_dir: &Path,
        free_disk: Option<u64>,
        available_mb: Option<usize>,
    ) -> Result<()> {
        if let Some(free) = free_disk {
            if self.store_bytes > free {
                bail!(
                    "the activations need {} on disk but {} has {} free; free some space, point `store.dir` at a larger disk, or use `store: {{dtype: f16}}` (half the size)",
                    gigabytes(self.store_bytes),
                    store_dir.display(),
                    gigabytes(free)
                );
            }
        }
        if let Some(available) = available_mb {
            let available = available as u64 * (1 << 20);
            if self.chunk_bytes > available {
                bail!(
                    "one extraction chunk needs {} of memory but only {} is available; lower `store.chunk_rows`",
                    gigabytes(self.chunk_bytes),
                    gigabytes(available)
                );
            }
        }
        Ok(())
    }
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_budget_follows_the_available_memory() {
        assert_eq!(MemoryBudget::derived(Some(64_000)).mb, MAX_DEFAULT_MB);
        assert_eq!(MemoryBudget::derived(Some(6_000)).mb, 1_000);
        assert_eq!(MemoryBudget::derived(Some(100)).mb, MIN_DEFAULT_MB);
        assert_eq!(MemoryBudget::derived(None).mb, MAX_DEFAULT_MB);
        assert!(MemoryBudget::derived(Some(6_000)).is_reduced());
        assert!(!MemoryBudget::derived(Some(64_000)).is_reduced());
    }

    #[test]
    fn mem_available_is_read_in_mebibytes() {
        let text = "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   2097152 kB\n";
        assert_eq!(parse_mem_available(text), Some(2048));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_store_larger_than_the_free_disk_is_refused_before_extraction() {
        let needs = ExtractionNeeds::new(1_000_000, 2_688, 4, 16_384);
        let error = needs
            .check(Path::new("/store"), Some(1 << 30), Some(16_000))
            .unwrap_err()
            .to_string();
        assert!(error.contains("10.75 GB on disk"), "{error}");
        assert!(error.contains("dtype: f16"), "{error}");
        needs
            .check(Path::new("/store"), Some(20 << 30), Some(16_000))
            .unwrap();
    }

    #[test]
    fn a_chunk_larger_than_the_memory_is_refused() {
        let needs = ExtractionNeeds::new(1_000_000, 17_856, 4, 1_000_000);
        let error = needs
            .check(Path::new("/store"), None, Some(8_000))
            .unwrap_err()
            .to_string();
        assert!(error.contains("store.chunk_rows"), "{error}");
    }

    #[test]
    fn free_disk_space_is_read_for_a_path_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_disk_bytes(&dir.path().join("not/yet/there"));
        assert!(free.is_some_and(|f| f > 0), "{free:?}");
    }
}
