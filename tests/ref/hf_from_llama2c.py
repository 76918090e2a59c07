#!/usr/bin/env python3
"""Converts a llama2.c checkpoint (version 0 or 1) into a Hugging Face LLaMA directory
(config.json + model.safetensors, F32), permuting q/k rows exactly as HF's
convert_llama_weights_to_hf does, so that HF's rotate_half RoPE equals Meta's RoPE on
interleaved pairs. Used to cross-check llama2c_ref.py (Meta layout) against
llama_ref.py / transformers (HF layout).

Usage: hf_from_llama2c.py CKPT.bin OUT_DIR
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402
from llama2c_ref import EPS, THETA, read_checkpoint  # noqa: E402


def permute(w, n_heads, dim1, dim2):
    # Within each head, Meta's rows are pairs (2i, 2i+1); HF wants all the "first" members
    # (rows 2i) in the first half of the head and the "second" members in the second half.
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("out_dir")
    a = ap.parse_args()
    c, w = read_checkpoint(a.ckpt)
    dim, nh, nkv = c["dim"], c["n_heads"], c["n_kv_heads"]
    kvd = nkv * (dim // nh)
    t = {"model.embed_tokens.weight": w["tok"], "model.norm.weight": w["rms_final"]}
    for i in range(c["n_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = w["rms_att"][i]
        t[p + "self_attn.q_proj.weight"] = permute(w["wq"][i], nh, dim, dim)
        t[p + "self_attn.k_proj.weight"] = permute(w["wk"][i], nkv, kvd, dim)
        t[p + "self_attn.v_proj.weight"] = w["wv"][i]
        t[p + "self_attn.o_proj.weight"] = w["wo"][i]
        t[p + "post_attention_layernorm.weight"] = w["rms_ffn"][i]
        t[p + "mlp.gate_proj.weight"] = w["w1"][i]
        t[p + "mlp.down_proj.weight"] = w["w2"][i]
        t[p + "mlp.up_proj.weight"] = w["w3"][i]
    if not c["shared_classifier"]:
        t["lm_head.weight"] = w["wcls"]
    t = {k: v.contiguous() for k, v in t.items()}
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": dim, "intermediate_size": c["hidden_dim"],
        "num_hidden_layers": c["n_layers"], "num_attention_heads": nh, "num_key_value_heads": nkv,
        "vocab_size": c["vocab_size"], "rms_norm_eps": EPS, "rope_theta": THETA, "rope_scaling": None,
        "max_position_embeddings": c["seq_len"], "tie_word_embeddings": c["shared_classifier"],
        "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    }
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    safetensors_py.save(os.path.join(a.out_dir, "model.safetensors"), t, {"format": "pt"})
    print(f"wrote {a.out_dir}")


if __name__ == "__main__":
    main()
