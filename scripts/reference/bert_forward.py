#!/usr/bin/env python3
"""Plain NumPy fp32 BERT forward pass: an independent reference for the
candle backend.

Reads config.json and model.safetensors from a Hugging Face model folder
(the safetensors header is parsed here with json + numpy.frombuffer; no
torch, no transformers, no safetensors package), takes token ids from a
JSON file and writes every hidden state (embeddings, then each layer's
output) as one .npy array of shape [layers + 1, batch, seq, hidden].

Input JSON: {"input_ids": [[...], ...],
             "attention_mask": [[...], ...],      # optional, default all 1
             "token_type_ids": [[...], ...]}      # optional, default all 0
All rows must have the same length (pad them; the mask marks real tokens).

Usage: bert_forward.py --model DIR --input ids.json --output states.npy
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """All tensors of a safetensors file as float32 NumPy arrays (I64 and
    other integer tensors, such as embeddings.position_ids, are skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start:base + end]
        dtype = info["dtype"]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in FLOAT_DTYPES:
            array = np.frombuffer(raw, dtype=FLOAT_DTYPES[dtype]).astype(np.float32)
        else:
            continue
        tensors[name] = array.reshape(info["shape"])
    return tensors


def weight_lookup(tensors):
    """name -> tensor, accepting names with or without a `bert.` prefix and
    LayerNorm gamma/beta for weight/bias."""
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

    def get(name):
        for candidate in (name, name.replace(".weight", ".gamma"), name.replace(".bias", ".beta")):
            if prefix + candidate in tensors:
                return tensors[prefix + candidate]
        raise KeyError(f"tensor {prefix + name} not found")

    return get


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def activation(name):
    if name == "gelu":
        try:
            from scipy.special import erf
        except ImportError:
            erf = np.vectorize(math.erf, otypes=[np.float32])
        return lambda x: 0.5 * x * (1.0 + erf(x / np.sqrt(np.float32(2.0))))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        c = np.float32(math.sqrt(2.0 / math.pi))
        return lambda x: 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return lambda x: np.maximum(x, 0)
    raise ValueError(f"unsupported hidden_act {name}")


def linear(x, get, name):
    return x @ get(name + ".weight").T + get(name + ".bias")


def encoder_layer(x, mask_bias, get, cfg, i, act):
    p = f"encoder.layer.{i}."
    batch, seq, hidden = x.shape
    heads = cfg["num_attention_heads"]
    d = hidden // heads
    eps = cfg.get("layer_norm_eps", 1e-12)

    def split(t):
        return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

    q = split(linear(x, get, p + "attention.self.query"))
    k = split(linear(x, get, p + "attention.self.key"))
    v = split(linear(x, get, p + "attention.self.value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d)) + mask_bias
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    attended = linear(context, get, p + "attention.output.dense")
    x = layer_norm(attended + x, get(p + "attention.output.LayerNorm.weight"),
                   get(p + "attention.output.LayerNorm.bias"), eps)
    inner = act(linear(x, get, p + "intermediate.dense"))
    out = linear(inner, get, p + "output.dense")
    return layer_norm(out + x, get(p + "output.LayerNorm.weight"),
                      get(p + "output.LayerNorm.bias"), eps)


def forward(model_dir, input_ids, attention_mask, token_type_ids):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    get = weight_lookup(read_safetensors(os.path.join(model_dir, "model.safetensors")))
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = activation(cfg.get("hidden_act", "gelu"))
    batch, seq = input_ids.shape
    positions = np.arange(seq)
    x = (get("embeddings.word_embeddings.weight")[input_ids]
         + get("embeddings.position_embeddings.weight")[positions][None, :, :]
         + get("embeddings.token_type_embeddings.weight")[token_type_ids])
    x = layer_norm(x, get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"), eps)
    mask_bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
    states = [x.astype(np.float32)]
    for i in range(cfg["num_hidden_layers"]):
        x = encoder_layer(x, mask_bias, get, cfg, i, act).astype(np.float32)
        states.append(x)
    return np.stack(states)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--input", required=True, help="JSON file with input_ids (and masks)")
    parser.add_argument("--output", required=True, help=".npy file for the hidden states")
    args = parser.parse_args()
    with open(args.input) as f:
        request = json.load(f)
    input_ids = np.asarray(request["input_ids"], dtype=np.int64)
    if input_ids.ndim != 2:
        sys.exit("input_ids must be a list of equally long lists (pad them)")
    mask = np.asarray(request.get("attention_mask", np.ones_like(input_ids)), dtype=np.int64)
    types = np.asarray(request.get("token_type_ids", np.zeros_like(input_ids)), dtype=np.int64)
    states = forward(args.model, input_ids, mask, types)
    np.save(args.output, states.astype(np.float32))
    print(json.dumps({"shape": list(states.shape)}))


if __name__ == "__main__":
    main()
