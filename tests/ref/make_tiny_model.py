#!/usr/bin/env python3
"""Writes a random tiny LLaMA in Hugging Face layout (config.json + safetensors) for tests.

Usage: make_tiny_model.py OUT_DIR [--seed 0] [--dtype F32|BF16|F16] [--shards N] [--tied]
                          [--rope-scaling F] [--hidden 60] [--heads 6] [--kv-heads 2]
                          [--intermediate 100] [--layers 3] [--vocab 97] [--rope-theta 500000]
                          [--max-pos 128] [--eps 1e-5]

The default geometry is deliberately awkward: head_dim 10 (not a power of two), GQA with
n_rep 3, vocab 97 (prime), a non-default rope_theta and an untied lm_head.
Weights ~ N(0, 0.08); norm weights 1 + N(0, 0.1), so logits are far from uniform.
The same --seed gives the same weights whatever --dtype/--shards/--tied (weights are drawn
in fp32 in a fixed order, then cast; with --tied lm_head is simply not drawn).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

DTYPES = {"F32": (torch.float32, "float32"), "BF16": (torch.bfloat16, "bfloat16"),
          "F16": (torch.float16, "float16")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=list(DTYPES), default="F32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--tied", action="store_true", help="tie_word_embeddings: no lm_head.weight")
    ap.add_argument("--rope-scaling", type=float, default=None,
                    help='linear RoPE scaling factor F: rope_scaling {"type":"linear","factor":F}')
    ap.add_argument("--hidden", type=int, default=60)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=100)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=97)
    ap.add_argument("--rope-theta", type=float, default=500000.0)
    ap.add_argument("--max-pos", type=int, default=128)
    ap.add_argument("--eps", type=float, default=1e-5)
    a = ap.parse_args()
    assert a.hidden % a.heads == 0 and a.heads % a.kv_heads == 0 and (a.hidden // a.heads) % 2 == 0
    assert a.shards >= 1

    H, I, V, L = a.hidden, a.intermediate, a.vocab, a.layers
    hd = H // a.heads
    kv = a.kv_heads * hd
    g = torch.Generator().manual_seed(a.seed)

    def w(*shape):  # projection/embedding weight
        return torch.randn(*shape, generator=g) * 0.08

    def norm(n):  # RMSNorm weight
        return 1.0 + torch.randn(n, generator=g) * 0.1

    # Fixed creation order (the HF state_dict order) so that the seed fully determines weights.
    t = {"model.embed_tokens.weight": w(V, H)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(H)
        t[p + "self_attn.q_proj.weight"] = w(H, H)
        t[p + "self_attn.k_proj.weight"] = w(kv, H)
        t[p + "self_attn.v_proj.weight"] = w(kv, H)
        t[p + "self_attn.o_proj.weight"] = w(H, H)
        t[p + "post_attention_layernorm.weight"] = norm(H)
        t[p + "mlp.gate_proj.weight"] = w(I, H)
        t[p + "mlp.up_proj.weight"] = w(I, H)
        t[p + "mlp.down_proj.weight"] = w(H, I)
    t["model.norm.weight"] = norm(H)
    if not a.tied:
        t["lm_head.weight"] = w(V, H)
    tdt, tname = DTYPES[a.dtype]
    t = {k: v.to(tdt).contiguous() for k, v in t.items()}

    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": H,
        "intermediate_size": I,
        "num_hidden_layers": L,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "vocab_size": V,
        "rms_norm_eps": a.eps,
        "rope_theta": a.rope_theta,
        "rope_scaling": None if a.rope_scaling is None else {"type": "linear", "factor": a.rope_scaling},
        "max_position_embeddings": a.max_pos,
        "tie_word_embeddings": bool(a.tied),
        "torch_dtype": tname,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "attention_bias": False,
        "pretraining_tp": 1,
    }
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    meta = {"format": "pt"}  # HF's loader refuses safetensors files without format=pt
    names = list(t)
    if a.shards == 1:
        safetensors_py.save(os.path.join(a.out_dir, "model.safetensors"), t, meta)
        print(f"wrote {a.out_dir}: {len(names)} tensors, {a.dtype}, 1 file")
        return
    # Split the tensors (in state_dict order) into N contiguous groups of roughly equal bytes.
    nbytes = {k: v.numel() * v.element_size() for k, v in t.items()}
    total = sum(nbytes.values())
    groups, acc = [[] for _ in range(a.shards)], 0
    for k in names:
        s = min(a.shards - 1, acc * a.shards // total)
        groups[s].append(k)
        acc += nbytes[k]
    assert all(groups), "more shards than tensors"
    weight_map = {}
    for s, grp in enumerate(groups):
        fname = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
        safetensors_py.save(os.path.join(a.out_dir, fname), {k: t[k] for k in grp}, meta)
        weight_map.update({k: fname for k in grp})
    with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    print(f"wrote {a.out_dir}: {len(names)} tensors, {a.dtype}, {a.shards} shards")


if __name__ == "__main__":
    main()
