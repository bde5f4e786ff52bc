#!/usr/bin/env python3
"""Extraction throughput of Python onnxruntime on the ONNX encoder that the
`onnx` backend plugin runs, for the comparison in BENCHMARKS.md.

Usage:
    .venv/bin/python bench/onnx_python.py [--threads 2] [--repeat 2] [--json OUT]

It does what `sieve bench configs/pos-wsj-onnx.yaml` does, the Python way:
the same model file, the same tokenizer (tokenizers, pre-split words, no
padding or truncation), the same hidden states exposed as graph outputs (the
embeddings LayerNorm, then every second LayerNormalization), the same
batching (units in calls of 256, each call sorted by length, longest first,
in batches of at most 32 sequences and 8,192 padded tokens) and the same
rows (each word's last subword, at every hidden state 0..=L). Tokens are
counted as Sieve counts them: the subwords of the words, specials and
padding excluded. The number reported per setting is the fastest of
`--repeat` passes over the WSJ train, dev and test files, after a warm-up.

A pass that stops at hidden state L runs a graph pruned to the nodes those
states need, as the plugin does, so the time column shows what truncation
saves.

Needs scripts/setup-python.sh (onnxruntime, onnx, tokenizers) and
scripts/fetch-assets.sh onnx-minilm minilm wsj.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS_PER_CALL = 256  # the runner's extraction chunk


def read_wsj(paths):
    """Words of every non-empty line (`word/TAG`, split at the last `/`)."""
    units = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    units.append([t.rsplit("/", 1)[0] for t in line.split()])
    return units


def hidden_state_names(graph):
    """The embeddings LayerNorm's output, then every second LayerNorm's."""
    norms = [n.output[0] for n in graph.node if n.op_type == "LayerNormalization"]
    if len(norms) < 3 or len(norms) % 2 == 0:
        sys.exit(f"expected 1 + 2 per layer LayerNormalization nodes, found {len(norms)}")
    return norms[::2]


def model_with_outputs(model, names):
    """A copy of `model` whose outputs are `names`, pruned to the nodes they
    need (a backward walk over the topologically sorted node list)."""
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    wanted = set(names)
    keep = []
    for node in reversed(graph.node):
        if any(o in wanted for o in node.output):
            keep.append(node)
            wanted.update(node.input)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    used = {name for node in keep for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.output[:]
    graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    return edited.SerializeToString()


def session(model_bytes, threads, optimization):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def plan_batches(lengths, batch_size, batch_tokens):
    """Longest first; at most `batch_size` sequences and `batch_tokens`
    padded tokens per batch (never fewer than one sequence)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        full = len(current) >= batch_size or (len(current) + 1) * longest > batch_tokens
        if full and current:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class Extractor:
    def __init__(self, tokenizer, sess, layers, batch_size, batch_tokens):
        self.tokenizer = tokenizer
        self.sess = sess
        self.layers = layers
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.cls = tokenizer.token_to_id("[CLS]")
        self.sep = tokenizer.token_to_id("[SEP]")
        self.pad = tokenizer.token_to_id("[PAD]") or 0
        self.unk = tokenizer.token_to_id("[UNK]")
        inputs = {i.name for i in sess.get_inputs()}
        self.with_types = "token_type_ids" in inputs

    def sequences(self, units):
        """Token ids with specials, and the position of each word's last subword."""
        encodings = self.tokenizer.encode_batch(units, is_pretokenized=True, add_special_tokens=False)
        out = []
        for words, enc in zip(units, encodings):
            last = [-1] * len(words)
            ids = [self.cls]
            for token_id, word in zip(enc.ids, enc.word_ids):
                if word is not None:
                    ids.append(token_id)
                    last[word] = len(ids) - 1
            for w, position in enumerate(last):
                if position < 0:  # a word with no subword becomes [UNK]
                    ids.append(self.unk)
                    last[w] = len(ids) - 1
            ids.append(self.sep)
            if len(ids) > 512:
                sys.exit("a unit is longer than 512 tokens; this script does not window")
            out.append((np.array(ids, dtype=np.int64), np.array(last, dtype=np.int64)))
        return out

    def encode(self, units):
        """Rows `[words, layers, hidden]` of every unit, and the subword count."""
        rows, subwords = [], 0
        for start in range(0, len(units), UNITS_PER_CALL):
            chunk = self.sequences(units[start:start + UNITS_PER_CALL])
            subwords += sum(len(ids) - 2 for ids, _ in chunk)
            chunk_rows = [None] * len(chunk)
            lengths = [len(ids) for ids, _ in chunk]
            for batch in plan_batches(lengths, self.batch_size, self.batch_tokens):
                seq_len = lengths[batch[0]]
                input_ids = np.full((len(batch), seq_len), self.pad, dtype=np.int64)
                mask = np.zeros((len(batch), seq_len), dtype=np.int64)
                for slot, i in enumerate(batch):
                    input_ids[slot, :lengths[i]] = chunk[i][0]
                    mask[slot, :lengths[i]] = 1
                feed = {"input_ids": input_ids, "attention_mask": mask}
                if self.with_types:
                    feed["token_type_ids"] = np.zeros_like(input_ids)
                states = np.stack(self.sess.run(self.layers, feed), axis=2)  # [B, T, layers, H]
                for slot, i in enumerate(batch):
                    chunk_rows[i] = states[slot, chunk[i][1]]
            rows.extend(chunk_rows)
        return rows, subwords


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "assets/minilm-int8-onnx/model.onnx"))
    parser.add_argument("--tokenizer", default=os.path.join(ROOT, "assets/all-MiniLM-L6-v2/tokenizer.json"))
    parser.add_argument("--data", nargs="+", default=[
        os.path.join(ROOT, f"assets/wsj/{s}.txt") for s in ("train", "dev", "test")])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optimization", default="all", choices=["disable", "basic", "extended", "all"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--layers", type=int, nargs="*", help="last hidden states to time (default: all, full first)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args()

    tokenizer = Tokenizer.from_file(args.tokenizer)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    model = onnx.load(args.model)
    names = hidden_state_names(model.graph)
    full = len(names) - 1
    settings = args.layers if args.layers else list(range(full, -1, -1))
    if full not in settings:
        settings.insert(0, full)
    units = read_wsj(args.data)
    print(f"Python onnxruntime {ort.__version__}, {os.path.basename(args.model)} "
          f"({full} layers), {len(units)} units, {args.threads} threads, "
          f"optimization {args.optimization}, batch {args.batch_size}")

    results = []
    for last in settings:
        outputs = names[:last + 1]
        sess = session(model_with_outputs(model, outputs), args.threads, args.optimization)
        extractor = Extractor(tokenizer, sess, outputs, args.batch_size, args.batch_tokens)
        extractor.encode(units[:64])  # warm-up
        best = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            rows, subwords = extractor.encode(units)
            seconds = time.perf_counter() - started
            if best is None or seconds < best[0]:
                best = (seconds, subwords)
        assert sum(len(r) for r in rows) == sum(len(u) for u in units)
        assert rows[0].shape[1:] == (last + 1, rows[0].shape[2])
        results.append({"last_layer": last, "subword_tokens": best[1], "seconds": best[0],
                        "tokens_per_second": best[1] / best[0]})
    full_seconds = next(r["seconds"] for r in results if r["last_layer"] == full)
    print(f"| last hidden state L | tokens | seconds | tokens/s | time vs full | L/{full} |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        r["relative_time"] = r["seconds"] / full_seconds
        print(f"| {r['last_layer']} | {r['subword_tokens']} | {r['seconds']:.2f} | "
              f"{r['tokens_per_second']:.0f} | {r['relative_time']:.3f} | {r['last_layer'] / full:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
