//! One chunk of a split as a safetensors file: a run of whole units with
//! their activation rows, targets and row counts. Written atomically in one
//! go; read back by mapping the file only while rows are copied out, so a
//! pass over a large split never keeps more than one chunk resident.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use half::f16;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::util::atomic::write_atomic_with;

/// Data offsets start on this boundary, so the mapped data is aligned and
/// can be borrowed in place.
const DATA_ALIGNMENT: usize = 64;

/// How activations are kept on disk. `f16` halves disk and memory traffic;
/// BERT-like hidden states (|x| < 100, about 3 significant digits needed by
/// a linear probe) lose nothing that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDtype {
    #[default]
    F32,
    F16,
}

impl StorageDtype {
    pub fn bytes(self) -> usize {
        match self {
            StorageDtype::F32 => 4,
            StorageDtype::F16 => 2,
        }
    }

    fn safetensors_name(self) -> &'static str {
        match self {
            StorageDtype::F32 => "F32",
            StorageDtype::F16 => "F16",
        }
    }
}

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

    /// Rows `range` of these targets.
    pub fn slice(&self, range: Range<usize>) -> SplitTargets {
        match self {
            SplitTargets::Labels(l) => SplitTargets::Labels(l[range].to_vec()),
            SplitTargets::Values(v) => SplitTargets::Values(v[range].to_vec()),
        }
    }

    /// Appends `other` (of the same kind) to these targets.
    pub fn extend(&mut self, other: SplitTargets) -> Result<()> {
        match (self, other) {
            (SplitTargets::Labels(a), SplitTargets::Labels(b)) => a.extend(b),
            (SplitTargets::Values(a), SplitTargets::Values(b)) => a.extend(b),
            _ => bail!("chunks of one split mix class labels and real targets"),
        }
        Ok(())
    }
}

/// A chunk in memory, ready to be written.
pub struct ChunkArrays<'a> {
    pub activations: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub targets: &'a SplitTargets,
    pub rows_per_unit: &'a [u32],
    pub dtype: StorageDtype,
}

/// Where a chunk sits in its split and what making it cost; kept in the
/// file's safetensors metadata so that each chunk file describes itself
/// (a resumed or merged extraction trusts only what the file says).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    pub file: String,
    pub first_unit: usize,
    pub units: usize,
    pub rows: usize,
    pub subword_tokens: u64,
    pub seconds: f64,
    pub windowed_units: u64,
}

/// Writes a chunk atomically.
pub fn write_chunk(path: &Path, chunk: &ChunkArrays<'_>, entry: &ChunkEntry) -> Result<()> {
    if chunk.activations.len() != chunk.rows * chunk.cols || chunk.targets.len() != chunk.rows {
        bail!(
            "internal error: chunk {} has inconsistent shapes",
            path.display()
        );
    }
    let targets_entry = match chunk.targets {
        SplitTargets::Labels(_) => ("labels", "U32"),
        SplitTargets::Values(_) => ("targets", "F32"),
    };
    let tensors = [
        (
            "activations",
            chunk.dtype.safetensors_name(),
            vec![chunk.rows, chunk.cols],
            chunk.dtype.bytes(),
        ),
        (targets_entry.0, targets_entry.1, vec![chunk.rows], 4),
        ("rows_per_unit", "U32", vec![chunk.rows_per_unit.len()], 4),
    ];
    let header = header_bytes(&tensors, entry)?;
    write_atomic_with(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        match chunk.dtype {
            StorageDtype::F32 => write_f32s(w, chunk.activations)?,
            StorageDtype::F16 => write_f16s(w, chunk.activations)?,
        }
        match chunk.targets {
            SplitTargets::Labels(labels) => write_u32s(w, labels)?,
            SplitTargets::Values(values) => write_f32s(w, values)?,
        }
        write_u32s(w, chunk.rows_per_unit)
    })
}

/// The JSON header, padded with spaces so the data starts aligned.
fn header_bytes(
    tensors: &[(&str, &str, Vec<usize>, usize)],
    entry: &ChunkEntry,
) -> Result<Vec<u8>> {
    let mut entries = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, dtype, shape, width) in tensors {
        let bytes = shape.iter().product::<usize>() * width;
        entries.insert(
            name.to_string(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    entries.insert(
        "__metadata__".into(),
        json!({
            "layout": "column = layer * hidden + neuron",
            "chunk": serde_json::to_string(entry)?,
        }),
    );
    let mut header = serde_json::to_vec(&entries)?;
    while !(8 + header.len()).is_multiple_of(DATA_ALIGNMENT) {
        header.push(b' ');
    }
    Ok(header)
}

fn write_f32s(w: &mut impl Write, values: &[f32]) -> std::io::Result<()> {
    for chunk in values.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_all(&bytes)?;
    }
    Ok(())
}

fn write_f16s(w: &mut impl Write, values: &[f32]) -> std::io::Result<()> {
    for chunk in values.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        w.write_all(&bytes)?;
    }
    Ok(())
}

fn write_u32s(w: &mut impl Write, values: &[u32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&bytes)
}

/// A checked chunk file: its small arrays in memory, its activations left
/// on disk until [`ChunkFile::with_rows`] maps them.
#[derive(Debug, Clone)]
pub struct ChunkFile {
    pub path: PathBuf,
    pub entry: ChunkEntry,
    pub dtype: StorageDtype,
    pub rows: usize,
    pub cols: usize,
    pub targets: SplitTargets,
    pub rows_per_unit: Vec<u32>,
    activations: Range<usize>,
}

/// A chunk's activations while its file is mapped.
pub enum ChunkRows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl ChunkRows<'_> {
    /// Copies `cols` of row `row` (of width `width`) into `out` as f32.
    pub fn copy_columns(&self, row: usize, width: usize, cols: &[usize], out: &mut [f32]) {
        let start = row * width;
        match self {
            ChunkRows::F32(data) => {
                let src = &data[start..start + width];
                for (d, &c) in out.iter_mut().zip(cols) {
                    *d = src[c];
                }
            }
            ChunkRows::F16(data) => {
                let src = &data[start..start + width];
                for (d, &c) in out.iter_mut().zip(cols) {
                    *d = src[c].to_f32();
                }
            }
        }
    }

    /// Copies row `row`'s columns `range` into `out` as f32.
    pub fn copy_range(&self, row: usize, width: usize, range: Range<usize>, out: &mut [f32]) {
        let start = row * width;
        let span = start + range.start..start + range.end;
        match self {
            ChunkRows::F32(data) => out.copy_from_slice(&data[span]),
            ChunkRows::F16(data) => {
                for (d, s) in out.iter_mut().zip(&data[span]) {
                    *d = s.to_f32();
                }
            }
        }
    }
}

impl ChunkFile {
    /// Reads and checks a chunk file's header and small arrays.
    pub fn open(path: &Path, expected_cols: usize) -> Result<ChunkFile> {
        let mmap = map(path)?;
        let parsed = SafeTensors::deserialize(&mmap)
            .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
        let (_, metadata) = SafeTensors::read_metadata(&mmap)
            .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
        let entry: ChunkEntry = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("chunk"))
            .and_then(|text| serde_json::from_str(text).ok())
            .with_context(|| {
                format!(
                    "{} has no chunk description in its metadata",
                    path.display()
                )
            })?;
        let ranges = tensor_ranges(&mmap, &parsed);
        let (dtype, shape, activations) = ranges
            .get("activations")
            .cloned()
            .with_context(|| format!("{} has no 'activations' tensor", path.display()))?;
        let dtype = match dtype {
            Dtype::F32 => StorageDtype::F32,
            Dtype::F16 => StorageDtype::F16,
            other => bail!(
                "{}: activations are {other:?}, expected F32 or F16",
                path.display()
            ),
        };
        if shape.len() != 2 || shape[1] != expected_cols || shape[0] != entry.rows {
            bail!(
                "{}: 'activations' has shape {shape:?}, expected [{}, {expected_cols}]",
                path.display(),
                entry.rows
            );
        }
        if !(mmap.as_ptr() as usize + activations.start).is_multiple_of(dtype.bytes()) {
            bail!("{}: activation data is not aligned", path.display());
        }
        let rows = shape[0];
        let targets = read_targets(path, &mmap, &ranges, rows)?;
        let rows_per_unit = match ranges.get("rows_per_unit") {
            Some((Dtype::U32, _, range)) => u32s(&mmap[range.clone()]),
            _ => bail!("{} has no U32 'rows_per_unit' tensor", path.display()),
        };
        let counted: u64 = rows_per_unit.iter().map(|&r| r as u64).sum();
        if rows_per_unit.len() != entry.units || counted != rows as u64 {
            bail!(
                "{}: {} units with {counted} rows, its description says {} units and {rows} rows",
                path.display(),
                rows_per_unit.len(),
                entry.units
            );
        }
        Ok(ChunkFile {
            path: path.to_path_buf(),
            entry,
            dtype,
            rows,
            cols: expected_cols,
            targets,
            rows_per_unit,
            activations,
        })
    }

    /// Maps the file for the duration of `visit` and hands it the rows.
    /// The mapping is dropped afterwards, so its pages leave this process's
    /// resident set.
    pub fn with_rows<T>(&self, visit: impl FnOnce(ChunkRows<'_>) -> T) -> Result<T> {
        let mmap = map(&self.path)?;
        let bytes = mmap.get(self.activations.clone()).with_context(|| {
            format!(
                "{} changed on disk since it was opened; delete the store entry to re-extract",
                self.path.display()
            )
        })?;
        // SAFETY: every bit pattern is a valid f32 / f16, and `open` checked
        // the alignment; a whole number of values is checked below.
        let rows = match self.dtype {
            StorageDtype::F32 => {
                let (head, values, tail) = unsafe { bytes.align_to::<f32>() };
                check_aligned(head.len() + tail.len(), &self.path)?;
                ChunkRows::F32(values)
            }
            StorageDtype::F16 => {
                let (head, values, tail) = unsafe { bytes.align_to::<f16>() };
                check_aligned(head.len() + tail.len(), &self.path)?;
                ChunkRows::F16(values)
            }
        };
        Ok(visit(rows))
    }
}

fn check_aligned(stray_bytes: usize, path: &Path) -> Result<()> {
    if stray_bytes != 0 {
        bail!("{}: activation data is not aligned", path.display());
    }
    Ok(())
}

fn map(path: &Path) -> Result<Mmap> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: the store's files are written once (atomically) and never
    // modified in place; a concurrent writer replaces them by rename.
    unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))
}

type TensorRanges = BTreeMap<String, (Dtype, Vec<usize>, Range<usize>)>;

fn tensor_ranges(mmap: &Mmap, parsed: &SafeTensors<'_>) -> TensorRanges {
    let base = mmap.as_ptr() as usize;
    parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let start = view.data().as_ptr() as usize - base;
            (
                name,
                (
                    view.dtype(),
                    view.shape().to_vec(),
                    start..start + view.data().len(),
                ),
            )
        })
        .collect()
}

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
