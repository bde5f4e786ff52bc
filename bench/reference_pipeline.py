#!/usr/bin/env python3
"""The paper's selection recipe written plainly in NumPy/SciPy, timed per
stage, on the activations Sieve stored (the comparison for BENCHMARKS.md).

Usage:
    .venv/bin/python bench/reference_pipeline.py STORE_ENTRY_DIR [--json OUT]
    .venv/bin/python bench/reference_pipeline.py STORE_ENTRY_DIR --sklearn

STORE_ENTRY_DIR is an extraction folder of a Sieve run (it holds
manifest.json and the chunk files it lists). The recipe follows METHOD.md:
Adam probe (lr 1e-3, 10 epochs, batch 128, l1 = l2 = 1e-5, unsquared L2,
rows in file order), LayerSelector (delta 1 %), Pearson correlation +
average linkage + distance cut at 0.3 with a seeded random representative,
NeuroX ordering (stride 1000) of the clustered probe's weights, and the
paper's top-N grid with delta 1 %.

--sklearn also times scikit-learn's elastic-net LogisticRegression
(solver="saga", l1_ratio=0.5, C=1; --max-iter epochs, default 100) on all
features (the oracle) for the probe comparison.
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform


def read_chunk(path):
    """(activations as float32, labels) of one chunk file of the store."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()

    def tensor(name, dtype):
        entry = header[name]
        start, end = entry["data_offsets"]
        return np.frombuffer(data[start:end], dtype=dtype).reshape(entry["shape"])

    stored = "<f2" if header["activations"]["dtype"] == "F16" else "<f4"
    return tensor("activations", stored).astype(np.float32), tensor("labels", "<u4").astype(np.int64)


def load_split(entry, name):
    """A split of a store entry: its chunk files (listed in the manifest, in
    row order) concatenated."""
    manifest = json.load(open(os.path.join(entry, "manifest.json")))
    split = next(s for s in manifest["splits"] if s["name"] == name)
    chunks = [read_chunk(os.path.join(entry, c["file"])) for c in split["chunks"]]
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def train_probe(x, y, classes, seed=42, epochs=10, batch=128, lr=1e-3, l1=1e-5, l2=1e-5):
    """Softmax regression with Adam, the paper's penalty, rows in order."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    bound = 1.0 / np.sqrt(d)
    w = rng.uniform(-bound, bound, (d, classes)).astype(np.float32)
    b = rng.uniform(-bound, bound, classes).astype(np.float32)
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)
    m_b, v_b = np.zeros_like(b), np.zeros_like(b)
    step = 0
    for _ in range(epochs):
        for start in range(0, n, batch):
            xb, yb = x[start:start + batch], y[start:start + batch]
            logits = xb @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            p /= len(yb)
            norm = np.sqrt((w * w).sum())
            g_w = xb.T @ p + l1 * np.sign(w) + (l2 * w / norm if norm > 0 else 0.0)
            g_b = p.sum(axis=0)
            step += 1
            for param, grad, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
                m *= 0.9
                m += 0.1 * grad
                v *= 0.999
                v += 0.001 * grad * grad
                m_hat = m / (1 - 0.9 ** step)
                v_hat = v / (1 - 0.999 ** step)
                param -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    return w, b


def accuracy(w, b, x, y):
    return float(((x @ w + b).argmax(axis=1) == y).mean())


def probe_score(train, dev, test, cols, classes):
    w, b = train_probe(train[0][:, cols], train[1], classes)
    return w, accuracy(w, b, dev[0][:, cols], dev[1]), accuracy(w, b, test[0][:, cols], test[1])


def correlation_clusters(x, threshold, seed):
    r = np.corrcoef(x, rowvar=False)
    r = np.nan_to_num(r, nan=0.0)
    d = 1.0 - np.abs(r)
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(d, checks=False), method="average")
    labels = fcluster(z, threshold, criterion="distance")
    rng = np.random.default_rng(seed)
    return sorted(int(rng.choice(np.flatnonzero(labels == c))) for c in np.unique(labels))


def top_neurons(weights, fraction):
    """NeuroX get_top_neurons: per class, the heaviest weights holding
    `fraction` of the class's absolute mass; union over classes."""
    chosen = set()
    for row in np.abs(weights):
        order = np.argsort(-row, kind="stable")
        cumulative = np.cumsum(row[order])
        total = cumulative[-1]
        count = int(np.searchsorted(cumulative, fraction * total)) + 1
        chosen.update(order[:min(count, len(order))].tolist())
    return chosen


def neuron_ordering(weights, stride=1000):
    ordering, seen = [], set()
    for i in range(stride + 1):
        new = top_neurons(weights, i / stride) - seen
        ordering.extend(sorted(new))
        seen |= new
    ordering.extend(sorted(set(range(weights.shape[1])) - seen))
    return ordering


def paper_sizes(total, available):
    fractions = [i / 1000 for i in range(1, 6)] + [i / 100 for i in range(1, 11)]
    fractions += [i / 20 for i in range(3, 11)] + [0.6, 0.7, 0.8, 0.9]
    sizes = sorted({int(f * total + 1e-9) for f in fractions})
    return [n for n in sizes if 0 < n <= available]


def run_recipe(entry, layers, hidden):
    train, dev, test = (load_split(entry, s) for s in ("train", "dev", "test"))
    classes = int(max(train[1].max(), dev[1].max(), test[1].max())) + 1
    total = layers * hidden
    times, results = {}, {}

    t = time.perf_counter()
    cumulative = []
    for k in range(layers):
        _, dev_acc, test_acc = probe_score(train, dev, test, np.arange((k + 1) * hidden), classes)
        cumulative.append((dev_acc, test_acc))
    target = cumulative[-1][0] * 0.99
    k = next((i for i, (d, _) in enumerate(cumulative) if d > target), layers - 1)
    times["layer_selector"] = time.perf_counter() - t
    results["oracle"] = cumulative[-1]
    results["layer_selector"] = {"k": k, "dev": cumulative[k][0], "test": cumulative[k][1]}

    t = time.perf_counter()
    cols = np.arange((k + 1) * hidden)
    kept = cols[correlation_clusters(train[0][:, cols], 0.3, 42)]
    w, cc_dev, cc_test = probe_score(train, dev, test, kept, classes)
    times["clustering"] = time.perf_counter() - t
    results["clustering"] = {"features": len(kept), "dev": cc_dev, "test": cc_test}

    t = time.perf_counter()
    ranked = kept[neuron_ordering(w.T)]
    times["ranking"] = time.perf_counter() - t

    t = time.perf_counter()
    chosen = (len(kept), cc_dev, cc_test)
    for n in paper_sizes(total, len(kept)):
        _, d, te = probe_score(train, dev, test, ranked[:n], classes)
        if d > cc_dev * 0.99:
            chosen = (n, d, te)
            break
    times["top_n"] = time.perf_counter() - t
    results["selection"] = {"features": chosen[0], "dev": chosen[1], "test": chosen[2]}
    times["total_after_extraction"] = sum(times.values())
    return {"times": times, "results": results}


def run_sklearn(entry, threads, max_iter):
    from sklearn.linear_model import LogisticRegression

    train, dev, test = (load_split(entry, s) for s in ("train", "dev", "test"))
    t = time.perf_counter()
    model = LogisticRegression(l1_ratio=0.5, C=1.0, solver="saga", max_iter=max_iter)
    model.fit(train[0], train[1])
    seconds = time.perf_counter() - t
    return {
        "sklearn_saga_seconds": seconds,
        "dev": float(model.score(dev[0], dev[1])),
        "test": float(model.score(test[0], test[1])),
        "threads": threads,
        "max_iter": max_iter,
        "iterations_run": int(max(model.n_iter_)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry")
    parser.add_argument("--json")
    parser.add_argument("--sklearn", action="store_true")
    parser.add_argument("--max-iter", type=int, default=100, help="saga epochs (with --sklearn)")
    args = parser.parse_args()
    manifest = json.load(open(os.path.join(args.entry, "manifest.json")))
    layers = manifest["identity"]["stored_layers"]
    hidden = manifest["identity"]["hidden_size"]
    if args.sklearn:
        out = run_sklearn(args.entry, os.environ.get("OMP_NUM_THREADS", "default"), args.max_iter)
    else:
        out = run_recipe(args.entry, layers, hidden)
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
