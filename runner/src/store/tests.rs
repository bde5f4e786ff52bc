use super::*;
use crate::store::manifest::ExtractionIdentity;

const COLS: usize = 4;

fn identity(data: &str) -> ExtractionIdentity {
    ExtractionIdentity {
        backend: "candle".into(),
        backend_version: "0.1.0".into(),
        model_name: "tiny".into(),
        model_fingerprint: "abc".into(),
        model_param_files: Default::default(),
        num_layers: 1,
        hidden_size: 2,
        stored_layers: 2,
        data_fingerprints: vec![data.into()],
        data_settings: "word-tag".into(),
        dtype: StorageDtype::F32,
    }
}

/// Rows per unit of three splits: 5 units of 2 rows, 3 units of 1 row,
/// 1 unit of 3 rows.
fn unit_rows() -> Vec<Vec<usize>> {
    vec![vec![2; 5], vec![1; 3], vec![3]]
}

/// Activations of row `r` of split `s`: distinct, with fractions f16
/// cannot hold exactly.
fn value(split: usize, row: usize, col: usize) -> f32 {
    split as f32 * 1000.0 + row as f32 * 10.0 + col as f32 + 0.1
}

/// Writes `planned` as an extractor would.
fn write(
    pending: &PendingExtraction,
    plan: &ChunkPlan,
    planned: &PlannedChunk,
    dtype: StorageDtype,
) {
    let rows_per_unit: Vec<u32> = unit_rows()[planned.split][planned.units.clone()]
        .iter()
        .map(|&r| r as u32)
        .collect();
    let first_row: usize = unit_rows()[planned.split][..planned.units.start]
        .iter()
        .sum();
    let rows = planned.rows;
    let activations: Vec<f32> = (0..rows * COLS)
        .map(|i| value(planned.split, first_row + i / COLS, i % COLS))
        .collect();
    let targets = SplitTargets::Labels((first_row as u32..(first_row + rows) as u32).collect());
    let arrays = ChunkArrays {
        activations: &activations,
        rows,
        cols: COLS,
        targets: &targets,
        rows_per_unit: &rows_per_unit,
        dtype,
    };
    let entry = ChunkEntry {
        file: String::new(),
        first_unit: 0,
        units: 0,
        rows: 0,
        subword_tokens: rows as u64,
        seconds: 0.5,
        windowed_units: 0,
    };
    assert!(plan.chunks.contains(planned));
    pending.write_chunk(planned, &arrays, entry).unwrap();
}

fn plan() -> ChunkPlan {
    // Calls of 2 units (4 rows in train), chunks of at most 4 rows.
    ChunkPlan::new(&unit_rows(), 2, 4)
}

fn extract_all(store: &ActivationStore, manifest: &Manifest, dtype: StorageDtype) -> Manifest {
    let plan = plan();
    let pending = store.begin(&manifest.key).unwrap();
    for planned in &plan.chunks {
        write(&pending, &plan, planned, dtype);
    }
    pending.finish(manifest.clone(), &plan).unwrap()
}

#[test]
fn the_plan_cuts_whole_calls_and_covers_every_unit_once() {
    let plan = plan();
    // train: calls [0,2) [2,4) [4,5) of 4, 4, 2 rows -> chunks of <= 4 rows
    let train: Vec<_> = plan.split_chunks(0).map(|c| c.units.clone()).collect();
    assert_eq!(train, vec![0..2, 2..4, 4..5]);
    let first_rows: Vec<usize> = plan.split_chunks(0).map(|c| c.first_row).collect();
    assert_eq!(first_rows, vec![0, 4, 8]);
    // dev: calls of 2, 1 rows: both fit in one chunk
    let dev: Vec<_> = plan.split_chunks(1).map(|c| c.units.clone()).collect();
    assert_eq!(dev, vec![0..3]);
    let rows: usize = plan.chunks.iter().map(|c| c.rows).sum();
    assert_eq!(rows, 10 + 3 + 3);
    let globals: Vec<usize> = plan.chunks.iter().map(|c| c.global_index).collect();
    assert_eq!(globals, (0..plan.chunks.len()).collect::<Vec<_>>());
}

#[test]
fn shards_split_the_chunks_between_them_exactly() {
    let plan = plan();
    let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
    for chunk in &plan.chunks {
        assert_eq!(shards.iter().filter(|s| s.owns(chunk)).count(), 1);
    }
    assert_eq!(Shard::parse("1/3").unwrap(), Shard { index: 1, count: 3 });
    for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
        let message = Shard::parse(bad).unwrap_err().to_string();
        assert!(message.contains("INDEX/COUNT"), "{bad}: {message}");
    }
}

#[test]
fn saved_extraction_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec!["A".into(), "B".into()]).unwrap();
    assert!(store.load(&manifest.key).unwrap().is_none());
    let written = extract_all(&store, &manifest, StorageDtype::F32);
    assert_eq!(written.splits[0].chunks.len(), 3);
    assert_eq!(written.subword_tokens, 16);
    let loaded = store
        .load(&manifest.key)
        .unwrap()
        .expect("extraction is stored");
    for (s, stored) in loaded.splits.iter().enumerate() {
        let rows: usize = unit_rows()[s].iter().sum();
        assert_eq!(stored.rows, rows);
        let expected: Vec<f32> = (0..rows * COLS)
            .map(|i| value(s, i / COLS, i % COLS))
            .collect();
        assert_eq!(stored.all_columns().unwrap(), expected);
        assert_eq!(
            stored.targets.labels(),
            (0..rows as u32).collect::<Vec<_>>()
        );
        let units: Vec<u32> = unit_rows()[s].iter().map(|&r| r as u32).collect();
        assert_eq!(stored.rows_per_unit, units);
    }
    assert_eq!(loaded.manifest.labels, vec!["A", "B"]);
    // Column subsets cross chunk boundaries in row order.
    let picked = loaded.splits[0].gather(&Columns::List(vec![3, 1])).unwrap();
    assert_eq!(
        &picked[..4],
        &[
            value(0, 0, 3),
            value(0, 0, 1),
            value(0, 1, 3),
            value(0, 1, 1)
        ]
    );
    assert_eq!(picked[2 * 9], value(0, 9, 3));
}

#[test]
fn f16_storage_halves_the_files_and_keeps_three_digits() {
    let dir32 = tempfile::tempdir().unwrap();
    let dir16 = tempfile::tempdir().unwrap();
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    extract_all(
        &ActivationStore::new(dir32.path()),
        &manifest,
        StorageDtype::F32,
    );
    let mut id16 = identity("d1");
    id16.dtype = StorageDtype::F16;
    let manifest16 = Manifest::new(id16, vec![]).unwrap();
    assert_ne!(manifest.key, manifest16.key, "precision is part of the key");
    let store16 = ActivationStore::new(dir16.path());
    extract_all(&store16, &manifest16, StorageDtype::F16);
    let size = |root: &std::path::Path, key: &str| {
        std::fs::metadata(root.join(key).join("train/00000.safetensors"))
            .unwrap()
            .len()
    };
    let (big, small) = (
        size(dir32.path(), &manifest.key),
        size(dir16.path(), &manifest16.key),
    );
    // 4 rows x 4 cols of activations: 64 bytes in f32, 32 in f16.
    assert_eq!(big - small, 32, "{big} vs {small}");
    let loaded = store16.load(&manifest16.key).unwrap().unwrap();
    assert_eq!(loaded.splits[0].dtype, StorageDtype::F16);
    let values = loaded.splits[2].all_columns().unwrap();
    for (i, v) in values.iter().enumerate() {
        let exact = value(2, i / COLS, i % COLS);
        assert!((v - exact).abs() <= exact.abs() * 1e-3, "{v} vs {exact}");
        assert_ne!(*v, exact, "f16 rounding is visible");
    }
}

#[test]
fn an_interrupted_extraction_resumes_at_its_first_missing_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    let plan = plan();
    let first = store.begin(&manifest.key).unwrap();
    write(&first, &plan, &plan.chunks[0], StorageDtype::F32);
    write(&first, &plan, &plan.chunks[1], StorageDtype::F32);
    drop(first); // the run dies here
    assert!(
        store.load(&manifest.key).unwrap().is_none(),
        "a partial extraction is not visible"
    );
    let error = format!(
        "{:#}",
        store
            .begin(&manifest.key)
            .unwrap()
            .finish(manifest.clone(), &plan)
            .unwrap_err()
    );
    assert!(
        error.contains("train/00002.safetensors is missing"),
        "{error}"
    );
    let resumed = store.begin(&manifest.key).unwrap();
    let missing: Vec<usize> = resumed
        .missing_chunks(&plan, COLS)
        .iter()
        .map(|c| c.global_index)
        .collect();
    assert_eq!(missing, (2..plan.chunks.len()).collect::<Vec<_>>());
    for planned in &plan.chunks[2..] {
        write(&resumed, &plan, planned, StorageDtype::F32);
    }
    resumed.finish(manifest.clone(), &plan).unwrap();
    let loaded = store.load(&manifest.key).unwrap().unwrap();
    assert_eq!(loaded.splits[0].all_columns().unwrap()[0], value(0, 0, 0));
}

#[test]
fn shards_written_to_separate_stores_merge_into_one() {
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    let plan = plan();
    let shard_dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (index, dir) in shard_dirs.iter().enumerate() {
        let pending = ActivationStore::new(dir.path())
            .begin(&manifest.key)
            .unwrap();
        let shard = Shard { index, count: 2 };
        for planned in plan.chunks.iter().filter(|c| shard.owns(c)) {
            write(&pending, &plan, planned, StorageDtype::F32);
        }
    }
    let merged_dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(merged_dir.path());
    let pending = store.begin(&manifest.key).unwrap();
    let mut copied = 0;
    for dir in &shard_dirs {
        let source = ActivationStore::new(dir.path())
            .partial_dir(&manifest.key)
            .unwrap();
        copied += pending.import_chunks(&source, &plan, COLS).unwrap();
    }
    assert_eq!(copied, plan.chunks.len());
    pending.finish(manifest.clone(), &plan).unwrap();
    let merged = store.load(&manifest.key).unwrap().unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    let reference_store = ActivationStore::new(reference_dir.path());
    extract_all(&reference_store, &manifest, StorageDtype::F32);
    let reference = reference_store.load(&manifest.key).unwrap().unwrap();
    for (a, b) in merged.splits.iter().zip(&reference.splits) {
        assert_eq!(a.all_columns().unwrap(), b.all_columns().unwrap());
        assert_eq!(a.targets, b.targets);
    }
}

#[test]
fn different_data_gives_a_different_key() {
    let a = Manifest::new(identity("d1"), vec![]).unwrap();
    let b = Manifest::new(identity("d2"), vec![]).unwrap();
    assert_ne!(a.key, b.key);
    assert_eq!(a.key, Manifest::new(identity("d1"), vec![]).unwrap().key);
}

#[test]
fn a_truncated_chunk_file_is_reported_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    extract_all(&store, &manifest, StorageDtype::F32);
    let file = store.entry_dir(&manifest.key).join("dev/00000.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    let error = store.load(&manifest.key).err().expect("damage is detected");
    let message = format!("{error:#}");
    assert!(message.contains("damaged"), "{message}");
    assert!(message.contains("dev/00000.safetensors"), "{message}");
}

#[test]
fn chunk_files_are_valid_safetensors_with_aligned_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    extract_all(&store, &manifest, StorageDtype::F16);
    let path = store
        .entry_dir(&manifest.key)
        .join("train/00001.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + header_len) % 64, 0);
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let activations = parsed.tensor("activations").unwrap();
    assert_eq!(activations.shape(), &[4, COLS]);
    assert_eq!(activations.dtype(), safetensors::Dtype::F16);
}

#[test]
fn row_ranges_and_row_lists_cross_chunk_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    extract_all(&store, &manifest, StorageDtype::F32);
    let train = &store.load(&manifest.key).unwrap().unwrap().splits[0];
    // Chunks hold rows 0..4, 4..8, 8..10.
    let columns = Columns::Range(1..3);
    let rows = train.gather_rows(&columns, 3..9).unwrap();
    let expected: Vec<f32> = (3..9)
        .flat_map(|r| [value(0, r, 1), value(0, r, 2)])
        .collect();
    assert_eq!(rows, expected);
    let listed = train
        .gather_row_list(&Columns::List(vec![0]), &[0, 5, 9])
        .unwrap();
    assert_eq!(listed, vec![value(0, 0, 0), value(0, 5, 0), value(0, 9, 0)]);
}
