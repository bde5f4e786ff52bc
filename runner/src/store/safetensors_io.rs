//! One split as a safetensors file: written streaming, read memory-mapped.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::json;

use crate::util::atomic::write_atomic_with;

/// Data offsets start on this boundary, so the mapped f32 data is aligned
/// and can be borrowed in place.
const DATA_ALIGNMENT: usize = 64;

/// What the probe predicts for each row.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitTargets {
    Labels(Vec<u32>),
    Values(Vec<f32>),
}

impl SplitTargets {
    pub fn len(&self) -> usize {
        match self {
            SplitTargets::Labels(l) => l.len(),
            SplitTargets::Values(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class indices (empty for regression).
    pub fn labels(&self) -> &[u32] {
        match self {
            SplitTargets::Labels(l) => l,
            SplitTargets::Values(_) => &[],
        }
    }

    /// Real targets (empty for classification).
    pub fn values(&self) -> &[f32] {
        match self {
            SplitTargets::Labels(_) => &[],
            SplitTargets::Values(v) => v,
        }
    }
}

/// A split in memory, ready to be written.
pub struct SplitArrays {
    pub activations: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
    pub targets: SplitTargets,
    pub rows_per_unit: Vec<u32>,
}

/// A split read from disk; activations stay in the mapped file.
pub struct StoredSplit {
    mmap: Mmap,
    activations: Range<usize>,
    pub rows: usize,
    pub cols: usize,
    pub targets: SplitTargets,
    pub rows_per_unit: Vec<u32>,
}

impl StoredSplit {
    /// Row-major `[rows, cols]`, borrowed from the mapped file.
    pub fn activations(&self) -> &[f32] {
        let bytes = &self.mmap[self.activations.clone()];
        // SAFETY: every bit pattern is a valid f32, and `read_split` checked
        // that the range is aligned and a whole number of f32s.
        let (head, values, tail) = unsafe { bytes.align_to::<f32>() };
        debug_assert!(head.is_empty() && tail.is_empty());
        values
    }
}

/// Writes a split atomically.
pub fn write_split(path: &Path, split: &SplitArrays) -> Result<()> {
    if split.activations.len() != split.rows * split.cols || split.targets.len() != split.rows {
        bail!(
            "internal error: split for {} has inconsistent shapes",
            path.display()
        );
    }
    let targets_entry = match &split.targets {
        SplitTargets::Labels(_) => ("labels", "U32"),
        SplitTargets::Values(_) => ("targets", "F32"),
    };
    let tensors = [
        ("activations", "F32", vec![split.rows, split.cols]),
        (targets_entry.0, targets_entry.1, vec![split.rows]),
        ("rows_per_unit", "U32", vec![split.rows_per_unit.len()]),
    ];
    let header = header_bytes(&tensors);
    write_atomic_with(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        write_f32s(w, &split.activations)?;
        match &split.targets {
            SplitTargets::Labels(labels) => write_u32s(w, labels)?,
            SplitTargets::Values(values) => write_f32s(w, values)?,
        }
        write_u32s(w, &split.rows_per_unit)
    })
}

/// The JSON header, padded with spaces so the data starts aligned.
fn header_bytes(tensors: &[(&str, &str, Vec<usize>)]) -> Vec<u8> {
    let mut entries = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, dtype, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        entries.insert(
            name.to_string(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    entries.insert(
        "__metadata__".into(),
        json!({"layout": "column = layer * hidden + neuron"}),
    );
    let mut header = serde_json::to_vec(&entries).unwrap_or_default();
    while !(8 + header.len()).is_multiple_of(DATA_ALIGNMENT) {
        header.push(b' ');
    }
    header
}

fn write_f32s(w: &mut impl Write, values: &[f32]) -> std::io::Result<()> {
    for chunk in values.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_all(&bytes)?;
    }
    Ok(())
}

fn write_u32s(w: &mut impl Write, values: &[u32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&bytes)
}

/// Maps a split file and checks its tensors' names, types and shapes.
pub fn read_split(path: &Path, expected_cols: usize) -> Result<StoredSplit> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: the store's files are written once (atomically) and never
    // modified in place; a concurrent writer replaces them by rename.
    let mmap =
        unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    let ranges = {
        let parsed = SafeTensors::deserialize(&mmap)
            .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
        let base = mmap.as_ptr() as usize;
        let mut ranges = BTreeMap::new();
        for (name, view) in parsed.tensors() {
            let start = view.data().as_ptr() as usize - base;
            ranges.insert(
                name,
                (
                    view.dtype(),
                    view.shape().to_vec(),
                    start..start + view.data().len(),
                ),
            );
        }
        ranges
    };
    let (dtype, shape, activations) = ranges
        .get("activations")
        .cloned()
        .with_context(|| format!("{} has no 'activations' tensor", path.display()))?;
    if dtype != Dtype::F32 || shape.len() != 2 || shape[1] != expected_cols {
        bail!(
            "{}: 'activations' is {dtype:?} {shape:?}, expected F32 [rows, {expected_cols}]",
            path.display()
        );
    }
    if !activations.start.is_multiple_of(4)
        || !(mmap.as_ptr() as usize + activations.start).is_multiple_of(4)
    {
        bail!("{}: activation data is not aligned", path.display());
    }
    let rows = shape[0];
    let targets = read_targets(path, &mmap, &ranges, rows)?;
    let rows_per_unit = match ranges.get("rows_per_unit") {
        Some((Dtype::U32, _, range)) => u32s(&mmap[range.clone()]),
        _ => bail!("{} has no U32 'rows_per_unit' tensor", path.display()),
    };
    Ok(StoredSplit {
        mmap,
        activations,
        rows,
        cols: expected_cols,
        targets,
        rows_per_unit,
    })
}

type TensorRanges = BTreeMap<String, (Dtype, Vec<usize>, Range<usize>)>;

fn read_targets(
    path: &Path,
    mmap: &Mmap,
    ranges: &TensorRanges,
    rows: usize,
) -> Result<SplitTargets> {
    let targets = if let Some((Dtype::U32, _, range)) = ranges.get("labels") {
        SplitTargets::Labels(u32s(&mmap[range.clone()]))
    } else if let Some((Dtype::F32, _, range)) = ranges.get("targets") {
        SplitTargets::Values(
            mmap[range.clone()]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    } else {
        bail!(
            "{} has neither U32 'labels' nor F32 'targets'",
            path.display()
        );
    };
    if targets.len() != rows {
        bail!(
            "{}: {} targets for {rows} rows",
            path.display(),
            targets.len()
        );
    }
    Ok(targets)
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
