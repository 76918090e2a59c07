#!/usr/bin/env python3
"""Writes a LLaMA model of a given geometry with random bf16 weights, in the Hugging Face
layout (config.json + sharded model-0000k-of-0000n.safetensors + index), streaming one
tensor at a time so memory stays at one tensor however large the model is. For the
true-size memory and speed measurements (launch/bench_7b_abm.sh); not part of the product.

  make_random_llama.py OUT_DIR [--preset 7b] [--shards 2] [--seed 0]
"""
import argparse
import json
import os

import numpy as np

PRESETS = {  # LLaMA-2-7B
    "7b": dict(hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, vocab=32000),
}


def tensors(g):
    """(name, shape, kind) in HF state_dict order; kind: 'normal' or 'ones'."""
    h, i, l, v = g["hidden"], g["intermediate"], g["layers"], g["vocab"]
    kv = g["kv_heads"] * (h // g["heads"])
    out = [("model.embed_tokens.weight", (v, h), "normal")]
    for k in range(l):
        p = f"model.layers.{k}."
        out += [(p + "input_layernorm.weight", (h,), "ones"),
                (p + "self_attn.q_proj.weight", (h, h), "normal"),
                (p + "self_attn.k_proj.weight", (kv, h), "normal"),
                (p + "self_attn.v_proj.weight", (kv, h), "normal"),
                (p + "self_attn.o_proj.weight", (h, h), "normal"),
                (p + "post_attention_layernorm.weight", (h,), "ones"),
                (p + "mlp.gate_proj.weight", (i, h), "normal"),
                (p + "mlp.up_proj.weight", (i, h), "normal"),
                (p + "mlp.down_proj.weight", (h, i), "normal")]
    out += [("model.norm.weight", (h,), "ones"), ("lm_head.weight", (v, h), "normal")]
    return out


def bf16_bytes(rng, shape, kind):
    n = int(np.prod(shape))
    if kind == "ones":
        return np.full(n, 0x3F80, dtype=np.uint16).tobytes()
    out = bytearray()
    for start in range(0, n, 1 << 24):  # 16M values at a time
        x = rng.standard_normal(min(1 << 24, n - start), dtype=np.float32) * np.float32(0.02)
        out += (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()  # truncate to bf16
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--preset", default="7b", choices=sorted(PRESETS))
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    g = PRESETS[a.preset]
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    all_t = tensors(g)
    # Contiguous runs of tensors per shard, split by bytes.
    total = sum(2 * int(np.prod(s)) for _, s, _ in all_t)
    shards, cur, acc = [[]], 0, 0
    for t in all_t:
        if acc >= total * (len(shards)) / a.shards and len(shards) < a.shards:
            shards.append([])
        shards[-1].append(t)
        acc += 2 * int(np.prod(t[1]))
    weight_map = {}
    for k, group in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, _ in group:
            nbytes = 2 * int(np.prod(shape))
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes]}
            off += nbytes
            weight_map[name] = fname
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * ((8 - len(hb) % 8) % 8)
        with open(os.path.join(a.out, fname), "wb") as f:
            f.write(len(hb).to_bytes(8, "little"))
            f.write(hb)
            for name, shape, kind in group:
                f.write(bf16_bytes(rng, shape, kind))
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": g["hidden"], "intermediate_size": g["intermediate"],
              "num_hidden_layers": g["layers"], "num_attention_heads": g["heads"],
              "num_key_value_heads": g["kv_heads"], "vocab_size": g["vocab"],
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{a.out}: {len(all_t)} tensors, {total / 2**30:.2f} GiB bf16 in {len(shards)} shards")


if __name__ == "__main__":
    main()
