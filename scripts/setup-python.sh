#!/usr/bin/env bash
# Creates .venv with the Python packages that Sieve's reference tests and
# comparison benchmarks need (NumPy and SciPy reference computations,
# scikit-learn and onnxruntime for the benchmark comparisons).
# Idempotent: a marker file records the requirement set that was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements="scripts/python-requirements.txt"
marker=".venv/.installed-$(sha256sum "$requirements" | cut -c1-16)"
if [[ -f "$marker" ]]; then
    exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null; then
    echo "setup-python: $python not found; install Python 3.9+ or set PYTHON" >&2
    exit 1
fi
echo "[setup-python] creating .venv with $("$python" --version)"
"$python" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
rm -f .venv/.installed-*
touch "$marker"
echo "[setup-python] ready: $(.venv/bin/python -c 'import numpy, scipy; print("numpy", numpy.__version__, "scipy", scipy.__version__)')"
