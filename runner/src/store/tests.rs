use super::*;
use crate::store::manifest::ExtractionIdentity;

fn identity(data: &str) -> ExtractionIdentity {
    ExtractionIdentity {
        backend: "candle".into(),
        backend_version: "0.1.0".into(),
        model_name: "tiny".into(),
        model_fingerprint: "abc".into(),
        num_layers: 1,
        hidden_size: 2,
        stored_layers: 2,
        data_fingerprints: vec![data.into()],
        data_settings: "word-tag".into(),
    }
}

fn split(rows: usize, offset: f32) -> SplitArrays {
    SplitArrays {
        activations: (0..rows * 4).map(|i| i as f32 + offset).collect(),
        rows,
        cols: 4,
        targets: SplitTargets::Labels((0..rows as u32).collect()),
        rows_per_unit: vec![rows as u32],
    }
}

fn entry(name: &str) -> SplitEntry {
    SplitEntry {
        name: name.into(),
        file: String::new(),
        rows: 0,
        units: 0,
        subword_tokens: 0,
        seconds: 0.0,
        windowed_units: 0,
    }
}

fn save_all(store: &ActivationStore, manifest: &Manifest, splits: &[SplitArrays]) {
    let pending = store.begin(&manifest.key).unwrap();
    let mut manifest = manifest.clone();
    for (name, arrays) in SPLITS.iter().zip(splits) {
        manifest
            .splits
            .push(pending.write_split(entry(name), arrays).unwrap());
    }
    pending.finish(&manifest).unwrap();
}

#[test]
fn an_interrupted_extraction_resumes_from_its_finished_splits() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    let first = store.begin(&manifest.key).unwrap();
    first.write_split(entry("train"), &split(3, 7.0)).unwrap();
    drop(first); // the run dies here
    assert!(
        store.load(&manifest.key).unwrap().is_none(),
        "a partial extraction is not visible"
    );
    let resumed = store.begin(&manifest.key).unwrap();
    let (done, stored) = resumed
        .completed_split("train", 4)
        .expect("train split is reused");
    assert_eq!(done.rows, 3);
    assert_eq!(stored.activations(), &split(3, 7.0).activations[..]);
    assert!(resumed.completed_split("dev", 4).is_none());
}

#[test]
fn saved_extraction_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec!["A".into(), "B".into()]).unwrap();
    let key = manifest.key.clone();
    assert!(store.load(&key).unwrap().is_none());
    let splits = [split(3, 0.0), split(2, 100.0), split(1, 200.0)];
    save_all(&store, &manifest, &splits);
    let loaded = store.load(&key).unwrap().expect("extraction is stored");
    assert_eq!(loaded.splits.len(), 3);
    for (stored, original) in loaded.splits.iter().zip(&splits) {
        assert_eq!(stored.activations(), &original.activations[..]);
        assert_eq!(stored.targets, original.targets);
        assert_eq!(stored.rows_per_unit, original.rows_per_unit);
    }
    assert_eq!(loaded.manifest.labels, vec!["A", "B"]);
}

#[test]
fn different_data_gives_a_different_key() {
    let a = Manifest::new(identity("d1"), vec![]).unwrap();
    let b = Manifest::new(identity("d2"), vec![]).unwrap();
    assert_ne!(a.key, b.key);
    assert_eq!(a.key, Manifest::new(identity("d1"), vec![]).unwrap().key);
}

#[test]
fn a_truncated_split_file_is_reported_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ActivationStore::new(dir.path());
    let manifest = Manifest::new(identity("d1"), vec![]).unwrap();
    let key = manifest.key.clone();
    save_all(
        &store,
        &manifest,
        &[split(3, 0.0), split(2, 0.0), split(1, 0.0)],
    );
    let file = store.entry_dir(&key).join("dev.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    let error = store.load(&key).err().expect("damage is detected");
    let message = format!("{error:#}");
    assert!(message.contains("damaged"), "{message}");
}

#[test]
fn stored_file_is_valid_safetensors_with_aligned_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    write_split(&path, &split(5, 0.5)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + header_len) % 64, 0);
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(parsed.tensor("activations").unwrap().shape(), &[5, 4]);
}
