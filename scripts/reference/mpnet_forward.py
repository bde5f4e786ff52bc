#!/usr/bin/env python3
"""Plain NumPy fp32 MPNet forward pass: an independent reference for the
candle backend's MPNet encoder (all-mpnet-base-v2).

Written from the architecture (Song et al. 2020, MPNet, as implemented by
Hugging Face's MPNetModel), not from the Rust code:
- embeddings: word + absolute position, no token types; positions count
  from padding_idx + 1 = 2 over the non-padding tokens (as RoBERTa's
  create_position_ids_from_input_ids); then LayerNorm;
- every layer: self-attention whose scaled scores get a relative-position
  bias (bucket of key position - query position, 32 buckets,
  bidirectional, max distance 128; one learned value per bucket and head,
  `encoder.relative_attention_bias.weight`, computed once and shared by
  all layers), output projection `attention.attn.o`, residual and
  `attention.LayerNorm`; then the feed-forward with its residual and
  `output.LayerNorm` (post-norm, as BERT).

Reads config.json and model.safetensors from a Hugging Face model folder
(safetensors parsed with json + numpy by bert_forward.read_safetensors; no
torch, no transformers), takes token ids from a JSON file and writes every
hidden state (embeddings, then each layer's output) as one .npy array of
shape [layers + 1, batch, seq, hidden].

Input JSON: {"input_ids": [[...], ...],
             "attention_mask": [[...], ...]}      # optional, default all 1
All rows must have the same length (pad them on the right with the pad id,
1; the mask marks real tokens).

Usage: mpnet_forward.py --model DIR --input ids.json --output states.npy
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert_forward import activation, layer_norm, read_safetensors  # noqa: E402

PADDING_IDX = 1


def weight_lookup(tensors):
    """name -> tensor, with or without the `mpnet.` prefix of task models."""
    prefix = "mpnet." if "mpnet.embeddings.word_embeddings.weight" in tensors else ""

    def get(name):
        if prefix + name not in tensors:
            raise KeyError(f"tensor {prefix + name} not found")
        return tensors[prefix + name]

    return get


def position_ids(input_ids):
    """Positions padding_idx + 1, + 2, ... over non-padding tokens; padding
    tokens get padding_idx."""
    mask = (input_ids != PADDING_IDX).astype(np.int64)
    return np.cumsum(mask, axis=1) * mask + PADDING_IDX


def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    """Bucket of each relative position (key - query), computed in float32
    as the PyTorch original: half the buckets for keys after the query,
    exact buckets for distances below num_buckets / 4, logarithmic ones up to
    max_distance, the last bucket beyond."""
    n = -relative_position
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    is_small = n < max_exact
    # n >= max_exact wherever the logarithm is used; clip to avoid log(0).
    safe = np.maximum(n, 1).astype(np.float32)
    scaled = (np.log(safe / np.float32(max_exact))
              / np.float32(math.log(max_distance / max_exact))
              * np.float32(half - max_exact))
    large = np.minimum(max_exact + scaled.astype(np.int64), half - 1)
    return ret + np.where(is_small, n, large)


def position_bias(get, seq, heads):
    """[1, heads, seq, seq] bias added to every layer's attention scores."""
    context = np.arange(seq)[:, None]
    memory = np.arange(seq)[None, :]
    buckets = relative_position_bucket(memory - context)
    table = get("encoder.relative_attention_bias.weight")  # [buckets, heads]
    assert table.shape[1] == heads, table.shape
    return table[buckets].transpose(2, 0, 1)[None].astype(np.float32)


def linear(x, get, name):
    # As one 2-D product: NumPy's stacked 3-D matmul is about twice as slow.
    rows = x.reshape(-1, x.shape[-1]) @ get(name + ".weight").T + get(name + ".bias")
    return rows.reshape(*x.shape[:-1], -1)


def encoder_layer(x, bias, get, cfg, i, act):
    p = f"encoder.layer.{i}."
    batch, seq, hidden = x.shape
    heads = cfg["num_attention_heads"]
    d = hidden // heads
    eps = cfg.get("layer_norm_eps", 1e-12)

    def split(t):
        return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

    q = split(linear(x, get, p + "attention.attn.q"))
    k = split(linear(x, get, p + "attention.attn.k"))
    v = split(linear(x, get, p + "attention.attn.v"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d)) + bias
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    attended = linear(context, get, p + "attention.attn.o")
    x = layer_norm(attended + x, get(p + "attention.LayerNorm.weight"),
                   get(p + "attention.LayerNorm.bias"), eps)
    inner = act(linear(x, get, p + "intermediate.dense"))
    out = linear(inner, get, p + "output.dense")
    return layer_norm(out + x, get(p + "output.LayerNorm.weight"),
                      get(p + "output.LayerNorm.bias"), eps)


def forward(model_dir, input_ids, attention_mask):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "mpnet":
        sys.exit(f"{model_dir}: model_type is {cfg.get('model_type')!r}, not 'mpnet'")
    get = weight_lookup(read_safetensors(os.path.join(model_dir, "model.safetensors")))
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = activation(cfg.get("hidden_act", "gelu"))
    batch, seq = input_ids.shape
    x = (get("embeddings.word_embeddings.weight")[input_ids]
         + get("embeddings.position_embeddings.weight")[position_ids(input_ids)])
    x = layer_norm(x, get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"), eps)
    mask_bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
    bias = position_bias(get, seq, cfg["num_attention_heads"]) + mask_bias
    states = [x.astype(np.float32)]
    for i in range(cfg["num_hidden_layers"]):
        x = encoder_layer(x, bias, get, cfg, i, act).astype(np.float32)
        states.append(x)
    return np.stack(states)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face MPNet model folder")
    parser.add_argument("--input", required=True, help="JSON file with input_ids (and mask)")
    parser.add_argument("--output", required=True, help=".npy file for the hidden states")
    args = parser.parse_args()
    with open(args.input) as f:
        request = json.load(f)
    input_ids = np.asarray(request["input_ids"], dtype=np.int64)
    if input_ids.ndim != 2:
        sys.exit("input_ids must be a list of equally long lists (pad them)")
    mask = np.asarray(request.get("attention_mask", np.ones_like(input_ids)), dtype=np.int64)
    states = forward(args.model, input_ids, mask)
    np.save(args.output, states.astype(np.float32))
    print(json.dumps({"shape": list(states.shape)}))


if __name__ == "__main__":
    main()
