//! The truncated encoder `sieve export` writes for the candle backend: the
//! backend loads it (also with zero encoder layers) and returns exactly the
//! full model's hidden states 0..=L, on the real MiniLM (BERT) and MPNet
//! checkpoints.

use std::path::{Path, PathBuf};

use abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};
use sieve_runner::slim::candle_encoder::write_truncated_encoder;

fn asset(relative: &str, fetch: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/fetch-assets.sh {fetch}` (or `make test`) first",
        path.display()
    );
    path
}

fn open(model: &Path) -> sieve_backend_candle::CandleBackend {
    let params = serde_json::json!({ "model": model, "threads": 2 });
    sieve_backend_candle::open(&params.to_string()).expect("the backend opens the folder")
}

/// Every word's last subword, hidden states 0..=last_layer.
fn encode(backend: &sieve_backend_candle::CandleBackend, last_layer: u32) -> Vec<f32> {
    let sentences = [
        "The slim model keeps only the layers it needs .",
        "Pierre Vinken , 61 years old , will join the board as a nonexecutive director Nov. 29 .",
        "Short .",
    ];
    let units: Vec<TextUnit> = sentences
        .iter()
        .map(|s| TextUnit::words(&s.split_whitespace().collect::<Vec<_>>()))
        .collect();
    let request = EncodeRequest {
        units: RVec::from(units),
        level: RowLevel::Word,
        subword_pooling: SubwordPooling::Last,
        sentence_pooling: SentencePooling::Cls,
        last_layer,
        batch_size: 2,
    };
    let rows = backend.encode(&request).expect("encode succeeds");
    assert_eq!(rows.layers, last_layer + 1);
    rows.values.to_vec()
}

fn check_truncations(model: &Path, layers: &[u32]) {
    let full = open(model);
    let total = full.describe().num_layers;
    for &kept in layers {
        let dir = tempfile::tempdir().unwrap();
        let truncated = write_truncated_encoder(model, dir.path(), kept).expect("truncate");
        assert_eq!(
            (truncated.source_layers, truncated.kept_layers),
            (total, kept)
        );
        assert!(truncated.written_bytes < truncated.source_bytes);
        let slim = open(dir.path());
        assert_eq!(slim.describe().num_layers, kept, "{}", model.display());
        let expected = encode(&full, kept);
        let actual = encode(&slim, kept);
        assert_eq!(actual.len(), expected.len());
        let worst = actual
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // The same weights through the same code: equal up to rounding.
        assert!(
            worst <= 1e-5,
            "{} truncated to {kept} layers: max |difference| {worst}",
            model.display()
        );
    }
}

#[test]
fn truncated_minilm_gives_the_full_models_first_hidden_states() {
    let model = asset("all-MiniLM-L6-v2", "minilm");
    check_truncations(&model, &[0, 2]);
}

#[test]
fn truncated_mpnet_keeps_its_relative_attention_bias() {
    let model = asset("all-mpnet-base-v2/model.safetensors", "mpnet");
    let folder = model.parent().unwrap();
    check_truncations(folder, &[1]);
}
