//! Extraction at scale on the real model and WSJ data: an extraction killed
//! midway resumes where it stopped, shards extracted apart merge into one
//! store entry, and both give exactly the activations of one uninterrupted
//! run.

use std::path::{Path, PathBuf};

use sieve_e2e::*;

/// Most rows per chunk: one extractor call of 256 WSJ sentences (at most
/// ~6,650 words) fits, two do not, so train (800 sentences) is cut in
/// several chunks, dev and test (100 sentences each) in one.
const CHUNK_ROWS: usize = 7000;

/// The quickstart spec storing into `store` with small chunks.
fn spec_with_store(dir: &Path, name: &str, store: &Path) -> PathBuf {
    let spec = shipped_spec("quickstart.yaml", dir, store);
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        &format!("store: {{dir: {}}}", store.display()),
        &format!(
            "store: {{dir: {}, chunk_rows: {CHUNK_ROWS}}}",
            store.display()
        ),
    );
    assert!(text.contains("chunk_rows"), "the store line was rewritten");
    write_spec(dir, name, &text)
}

/// The only finished entry (or `.partial` folder) of a store.
fn entry(store: &Path, partial: bool) -> Option<PathBuf> {
    std::fs::read_dir(store).ok()?.find_map(|e| {
        let path = e.ok()?.path();
        let is_partial = path.extension().is_some_and(|x| x == "partial");
        (path.is_dir() && is_partial == partial).then_some(path)
    })
}

/// (split, file, activation bytes) of every chunk an entry's manifest
/// lists: the data alone, since each file's metadata also records timing.
fn activations(entry: &Path) -> Vec<(String, String, Vec<u8>)> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(entry.join("manifest.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for split in manifest["splits"].as_array().unwrap() {
        for chunk in split["chunks"].as_array().unwrap() {
            let file = chunk["file"].as_str().unwrap();
            let bytes = std::fs::read(entry.join(file)).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
            let offsets = &header["activations"]["data_offsets"];
            let (start, end) = (
                8 + n + offsets[0].as_u64().unwrap() as usize,
                8 + n + offsets[1].as_u64().unwrap() as usize,
            );
            out.push((
                split["name"].as_str().unwrap().to_string(),
                file.to_string(),
                bytes[start..end].to_vec(),
            ));
        }
    }
    out
}

#[test]
fn a_killed_extraction_resumes_and_shards_merge_to_the_uninterrupted_result() {
    asset("wsj/train.txt");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // The reference: one uninterrupted extraction.
    let whole_store = root.join("whole");
    let spec = spec_with_store(root, "whole.yaml", &whole_store);
    let output = sieve(&["extract", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let whole = activations(&entry(&whole_store, false).expect("a finished entry"));
    let names: Vec<&str> = whole.iter().map(|c| c.1.as_str()).collect();
    let train_chunks = names.iter().filter(|n| n.starts_with("train/")).count();
    assert!(
        train_chunks >= 3,
        "train is cut in several chunks: {names:?}"
    );
    let expected: Vec<String> = (0..train_chunks)
        .map(|i| format!("train/{i:05}.safetensors"))
        .chain([
            "dev/00000.safetensors".into(),
            "test/00000.safetensors".into(),
        ])
        .collect();
    assert_eq!(names, expected, "chunks are numbered in order per split");
    for (split, file, bytes) in &whole {
        let rows = bytes.len() / (7 * 384 * 4);
        assert!(
            rows <= CHUNK_ROWS,
            "{split} {file}: {rows} rows > chunk_rows"
        );
    }

    // Killed right after its second chunk (a test hook aborts the
    // process there, deterministically), then run again.
    let killed_store = root.join("killed");
    let spec = spec_with_store(root, "killed.yaml", &killed_store);
    let output = std::process::Command::new(sieve_bin())
        .args(["extract", spec.to_str().unwrap()])
        .env_remove("SIEVE_PLUGIN_DIR")
        .env("SIEVE_TEST_DIE_AFTER_CHUNKS", "2")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "the hook did not stop the extraction"
    );
    assert!(
        text(&output).contains("stopping after chunk 2"),
        "{}",
        text(&output)
    );
    let partial = entry(&killed_store, true).expect("a partial folder is left");
    assert!(partial.join("train/00001.safetensors").exists());
    assert!(!partial.join("train/00002.safetensors").exists());
    assert!(
        entry(&killed_store, false).is_none(),
        "a killed extraction leaves no entry that looks complete"
    );
    let output = sieve(&["extract", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("chunks already on disk"),
        "the rerun resumed: {}",
        text(&output)
    );
    assert_eq!(
        activations(&entry(&killed_store, false).unwrap()),
        whole,
        "resumed activations equal the uninterrupted run's"
    );

    // Two shards into their own stores, merged into a third.
    let shard_stores: Vec<PathBuf> = (0..2).map(|i| root.join(format!("shard{i}"))).collect();
    for (i, store) in shard_stores.iter().enumerate() {
        let spec = spec_with_store(root, &format!("shard{i}.yaml"), store);
        let shard = format!("{i}/2");
        let output = sieve(&["extract", spec.to_str().unwrap(), "--shard", &shard], &[]);
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            entry(store, false).is_none(),
            "a shard does not finish the entry"
        );
    }
    let merged_store = root.join("merged");
    let spec = spec_with_store(root, "merged.yaml", &merged_store);
    let output = sieve(
        &[
            "merge",
            spec.to_str().unwrap(),
            shard_stores[0].to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success(), "half the shards cannot be merged");
    // Shard 1 of 2 owns every second chunk from chunk 1.
    let missing = format!(
        "{} of {} chunks are still missing",
        whole.len() / 2,
        whole.len()
    );
    assert!(text(&output).contains(&missing), "{}", text(&output));
    let output = sieve(
        &[
            "merge",
            spec.to_str().unwrap(),
            shard_stores[0].to_str().unwrap(),
            shard_stores[1].to_str().unwrap(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(activations(&entry(&merged_store, false).unwrap()), whole);
}

#[test]
fn a_run_over_the_memory_limit_streams_f16_activations_and_keeps_the_accuracy() {
    asset("wsj/train.txt");
    // The reference: the quickstart in memory with f32 activations.
    let reference = tempfile::tempdir().unwrap();
    let spec = shipped_spec(
        "quickstart.yaml",
        reference.path(),
        &reference.path().join("store"),
    );
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let in_memory = read_report(&reference.path().join("run"))["oracle"]["test"]
        .as_f64()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = shipped_spec("quickstart.yaml", dir.path(), &store);
    // 16 MiB: every probe of more than ~200 columns streams 4 MiB blocks.
    let spec_text = std::fs::read_to_string(&spec).unwrap().replace(
        &format!("store: {{dir: {}}}", store.display()),
        &format!(
            "store: {{dir: {}, dtype: f16, in_memory_mb: 16}}",
            store.display()
        ),
    );
    // The paper's selection too: the selectors then get a row sample.
    let spec_text = spec_text
        + "selection:\n  layer_selector: {delta: 1.0}\n  clustering: {selector: correlation, params: {threshold: 0.3}}\n  ranking: {selector: elastic-net}\n  top_n: {delta: 1.0}\n";
    let spec = write_spec(dir.path(), "streamed.yaml", &spec_text);
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let run = dir.path().join("run");
    let report = read_report(&run);
    let oracle = report["oracle"]["test"].as_f64().unwrap();
    // Streaming in file order gives the same batches; f16 rounding moves
    // the oracle by a few test words at most (measured: see BENCHMARKS.md).
    assert!(
        (oracle - in_memory).abs() < 0.005,
        "oracle test {oracle} streamed from f16 vs {in_memory} in memory"
    );
    // LayerSelector keeps layers 0..k; their 384 (k + 1) columns of 19,915
    // train rows exceed 16 MiB (30 MB at k = 0), so the clustering plugin
    // sees an evenly spread sample, and the report says so.
    let k = report["layer_selector"]["k"].as_u64().unwrap() as usize;
    let columns = 384 * (k + 1);
    let warnings = report["warnings"].to_string();
    let sampled = (16usize << 20) / (4 * columns);
    assert!(
        warnings.contains(&format!(
            "selector 'correlation' saw {sampled} of 19915 train rows"
        )),
        "k = {k}: {warnings}"
    );
    let kept = report["selection"]["features"].as_u64().unwrap();
    assert!(kept > 0 && kept < columns as u64, "{kept} of {columns}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let note = results["oracle_probe"]["solver_note"].as_str().unwrap();
    assert!(note.contains("streamed in blocks of"), "{note}");
    let entry = entry(&store, false).unwrap();
    let chunk = std::fs::read(entry.join("train/00000.safetensors")).unwrap();
    let n = u64::from_le_bytes(chunk[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&chunk[8..8 + n]).unwrap();
    assert_eq!(header["activations"]["dtype"], "F16");
}
