# The two entry points of the README, and the steps they need.
#   make demo  - fetch the real assets, build, run configs/quickstart.yaml
#   make test  - fetch assets and Python references, build, run every test

CARGO ?= cargo
SIEVE := target/release/sieve

.PHONY: demo test assets test-assets python build lint bench bench-onnx clean-runs

demo: assets build
	$(SIEVE) run configs/quickstart.yaml

test: assets test-assets python build
	$(CARGO) test --release --workspace --no-fail-fast

assets:
	scripts/fetch-assets.sh

# What only the tests need beyond the demo's assets: the int8 ONNX export
# and the ONNX Runtime library (onnx backend), and all-mpnet-base-v2
# (404 MB, the MPNet encoder's reference check).
test-assets:
	scripts/fetch-assets.sh onnx-minilm onnxruntime mpnet

python:
	scripts/setup-python.sh

# Builds the runner and every plugin library next to it (target/release).
build:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

bench: assets build
	$(SIEVE) bench configs/quickstart.yaml --repeat 2

# ONNX Runtime through the plugin, then the same file through Python
# onnxruntime (BENCHMARKS.md, "ONNX Runtime backend").
bench-onnx: assets test-assets python build
	$(SIEVE) bench configs/pos-wsj-onnx.yaml --repeat 2
	.venv/bin/python bench/onnx_python.py --threads 2 --repeat 2

clean-runs:
	rm -rf runs
