//! The quickstart experiment through ONNX Runtime: configs/pos-wsj-onnx.yaml
//! runs the int8 ONNX export of all-MiniLM-L6-v2 through the `onnx` plugin
//! and the real runner, and must score like the candle run of the fp32 model.

use std::path::PathBuf;

use sieve_e2e::*;

/// Oracle test accuracy of this spec, measured on this machine (BENCHMARKS.md,
/// "ONNX Runtime backend"): 93.29 (dev 93.02).
const ORACLE_TEST_MEASURED: f64 = 0.9329;
/// The candle quickstart's oracle test accuracy on the fp32 model (dev 92.98).
const CANDLE_ORACLE_TEST: f64 = 0.9325;
/// One accuracy point.
const TOLERANCE: f64 = 0.01;

/// An ONNX asset, failing with the fetch command that provides it (the
/// default `scripts/fetch-assets.sh` does not fetch these).
fn onnx_asset(relative: &str, fetch: &str) -> PathBuf {
    let path = root().join("assets").join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/fetch-assets.sh {fetch}` (or `make test`) first",
        path.display()
    );
    path
}

#[test]
fn onnx_backend_runs_the_quickstart_with_the_candle_oracle() {
    let _store = store_lock();
    onnx_asset("minilm-int8-onnx/model.onnx", "onnx-minilm");
    onnx_asset("onnxruntime/libonnxruntime.so", "onnxruntime");
    asset("all-MiniLM-L6-v2/tokenizer.json");
    asset("wsj/train.txt");
    let out = tempfile::tempdir().unwrap();
    let spec = shipped_spec("pos-wsj-onnx.yaml", out.path(), &shared_store());
    let output = sieve(&["run", spec.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", text(&output));

    let report = read_report(&out.path().join("run"));
    assert_eq!(report["model"]["backend"], "onnx");
    assert_eq!(report["model"]["layers"], 7);
    assert_eq!(report["model"]["hidden"], 384);
    assert_eq!(report["model"]["features"], 2688);
    assert_eq!(report["oracle"]["features"], 2688, "7 layers x 384");
    assert_eq!(report["layers"].as_array().unwrap().len(), 7);
    // The candle backend's tokenisation: every word of WSJ, same subwords.
    assert_eq!(report["extraction"]["subword_tokens"], 29228);

    let oracle_test = report["oracle"]["test"].as_f64().unwrap();
    assert!(
        (oracle_test - ORACLE_TEST_MEASURED).abs() <= TOLERANCE,
        "oracle test {oracle_test}, measured {ORACLE_TEST_MEASURED}"
    );
    assert!(
        (oracle_test - CANDLE_ORACLE_TEST).abs() <= TOLERANCE,
        "oracle test {oracle_test}, candle {CANDLE_ORACLE_TEST}"
    );
}
