//! The device path (`device_forward.rs`, what runs on a GPU with the `cuda`
//! feature) computes the same hidden states as the fused CPU path: checked
//! here on the CPU with the real MiniLM (BERT) and all-mpnet-base-v2 (MPNet,
//! relative-position bias) models, on a padded batch.

mod common;

use candle_core::Device;
use common::{cosine, max_abs_diff, workspace_root};
use sieve_backend_candle::{parse_device, CandleBackend, CandleParams, DeviceEncoder};
use sieve_encoder_common::PaddedBatch;

/// Token ids spread over the vocabulary, between `cls` and `sep`, of three
/// lengths so that the batch is padded.
fn sequences(cls: u32, sep: u32, vocab: u32) -> Vec<Vec<u32>> {
    [5usize, 17, 11]
        .iter()
        .enumerate()
        .map(|(s, &len)| {
            let mut ids = vec![cls];
            ids.extend((0..len).map(|i| 1000 + ((s * 7919 + i * 104_729) as u32 % (vocab - 2000))));
            ids.push(sep);
            ids
        })
        .collect()
}

fn compare(model: &str, cls: u32, sep: u32, pad: u32) {
    let folder = workspace_root().join("assets").join(model);
    assert!(
        folder.join("model.safetensors").is_file(),
        "{} missing: run scripts/fetch-assets.sh",
        folder.display()
    );
    let backend = CandleBackend::open(&CandleParams {
        model: folder,
        max_length: None,
        batch_tokens: None,
        threads: None,
        device: None,
    })
    .expect("model loads");
    let encoder = backend.encoder();
    let layers = encoder.shape().num_layers;
    let vocab = 30_000;
    let batch = PaddedBatch::from_ids(&sequences(cls, sep, vocab), pad);
    let fused = encoder
        .hidden_states(&batch, layers)
        .expect("fused forward");
    let generic = DeviceEncoder::new(encoder, &Device::Cpu)
        .expect("weights copied")
        .hidden_states(encoder, &batch, layers)
        .expect("generic forward");
    let mut worst = (1.0f32, 0.0f32);
    for layer in 0..=layers {
        for (s, &length) in batch.lengths.iter().enumerate() {
            for position in 0..length {
                let a = fused.vector(layer, s, position);
                let b = generic.vector(layer, s, position);
                worst.0 = worst.0.min(cosine(a, b));
                worst.1 = worst.1.max(max_abs_diff(a, b));
            }
        }
    }
    assert!(
        worst.0 > 0.99999 && worst.1 < 2e-3,
        "{model}: min cosine {} max |diff| {}",
        worst.0,
        worst.1
    );
}

#[test]
fn the_device_path_equals_the_fused_path_on_bert() {
    compare("all-MiniLM-L6-v2", 101, 102, 0);
}

#[test]
fn the_device_path_equals_the_fused_path_on_mpnet() {
    compare("all-mpnet-base-v2", 0, 2, 1);
}

#[test]
fn devices_are_parsed_and_a_gpu_without_the_feature_is_a_clear_error() {
    assert!(parse_device("cpu").expect("cpu").is_cpu());
    let message = parse_device("gpu0").expect_err("not a device");
    assert!(message.contains("`cpu`, `cuda` or `cuda:N`"), "{message}");
    if !cfg!(feature = "cuda") {
        let message = parse_device("cuda:1").expect_err("no CUDA in this build");
        assert!(message.contains("--features cuda"), "{message}");
    }
}
