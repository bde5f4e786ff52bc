#!/usr/bin/env python3
"""Reference correlation clustering with NumPy and SciPy.

The `correlation` selector plugin (plugins/selector-correlation) must give
the same partition as this script; its test
`plugins/selector-correlation/tests/scipy_equivalence.rs` runs both.

Steps, as the paper's code (NeuroX `extract_independent_neurons`) runs them:
  r = numpy.corrcoef(columns), NaN (constant column) -> 0
  d = 1 - |r|
  Z = scipy.cluster.hierarchy.linkage(squareform(d, checks=False), method)
  labels = fcluster(Z, t, criterion="distance")

One addition, the plugin's documented near-constant rule: a column whose
population standard deviation is at most REL * (|mean| + s), with s the
median over columns of sqrt(mean(x^2)), gets r = 0 with every other column,
as an exactly constant column does after NaN -> 0. `--near-constant-rel 0`
turns it off (only exactly constant columns are then zeroed, by NumPy).

Usage:
  scipy_clustering.py MATRIX [--thresholds 0.1,0.3] [--method average]
                             [--near-constant-rel 1e-6]
MATRIX is a .npy file (rows x cols) or a .json file holding a list of rows.
The matrix is read as float32 (the activations' type), computed in float64.
Prints JSON: {"near_constant": [...], "partitions": {"0.1": [label, ...]}}.
"""

import argparse
import json
import sys

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform


def load_matrix(path):
    if path.endswith(".npy"):
        x = np.load(path)
    else:
        with open(path) as f:
            x = np.array(json.load(f))
    if x.ndim != 2:
        sys.exit(f"{path}: expected a 2-D matrix, got shape {x.shape}")
    return x.astype(np.float32)


def near_constant_columns(x, rel):
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    scale = np.median(np.sqrt((x * x).mean(axis=0)))
    return std <= rel * (np.abs(mean) + scale)


def correlation_distances(x, near_constant):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.corrcoef(x, rowvar=False)
    r = np.nan_to_num(np.atleast_2d(r), nan=0.0)
    r[near_constant, :] = 0.0
    r[:, near_constant] = 0.0
    d = 1.0 - np.abs(r)
    np.fill_diagonal(d, 0.0)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("matrix")
    ap.add_argument("--thresholds", default="0.3")
    ap.add_argument("--method", default="average")
    ap.add_argument("--near-constant-rel", type=float, default=1e-6)
    args = ap.parse_args()

    x = load_matrix(args.matrix).astype(np.float64)
    near = near_constant_columns(x, args.near_constant_rel)
    d = correlation_distances(x, near)
    z = linkage(squareform(d, checks=False), method=args.method)
    partitions = {}
    for t in args.thresholds.split(","):
        labels = fcluster(z, float(t), criterion="distance")
        partitions[t] = [int(v) for v in labels]
    json.dump(
        {"near_constant": [int(i) for i in np.flatnonzero(near)], "partitions": partitions},
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
