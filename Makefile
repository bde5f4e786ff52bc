# The two entry points of the README, and the steps they need.
#   make demo  - fetch the real assets, build, run configs/quickstart.yaml
#   make test  - fetch assets and Python references, build, run every test

CARGO ?= cargo
SIEVE := target/release/sieve

.PHONY: demo test assets python build lint bench clean-runs

demo: assets build
	$(SIEVE) run configs/quickstart.yaml

test: assets python build
	$(CARGO) test --release --workspace

assets:
	scripts/fetch-assets.sh

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

clean-runs:
	rm -rf runs
