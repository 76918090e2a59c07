#!/usr/bin/env python3
"""Reference LLaMA + LoRA forward/backward in plain torch, for checking the C++ adapters.
The base model is llama_ref.RefLlama (HF semantics, written from the spec); LoRA is written
from the paper/PEFT formula y = W x + s * B (A x), s = lora_alpha / r (/ sqrt(r) with
use_rslora). The adapter is read as a PEFT directory (adapter_config.json +
adapter_model.safetensors) with the independent safetensors_py reader. fp32, no dropout.

Usage: lora_ref.py MODEL_DIR ADAPTER_DIR --ids "1,5,7;3,4,9" --out OUT.safetensors
                   [--loss ce|sum]

--loss ce:  mean next-token cross-entropy over all positions but the last of each row
--loss sum: sum of all logits
Writes "logits" F32 [B,T,V], "loss" F32 [1], and for every adapter tensor KEY of the PEFT
file "grad:KEY" (same shape) = d loss / d KEY.
"""
import argparse
import json
import math
import os
import re
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402
from llama_ref import RefLlama, parse_ids  # noqa: E402

KEY = re.compile(r"base_model\.model\.(model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj)\.lora_([AB])\.weight")


class LoraLlama(RefLlama):
    def __init__(self, model_dir, adapter_dir):
        super().__init__(model_dir, torch.float32)
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            c = json.load(f)
        r = c["r"]
        self.scale = c["lora_alpha"] / (math.sqrt(r) if c.get("use_rslora", False) else r)
        self.raw = safetensors_py.load(os.path.join(adapter_dir, "adapter_model.safetensors"))
        self.ab = {}  # module name -> [A, B] leaves
        for key, t in self.raw.items():
            m = KEY.fullmatch(key)
            assert m, f"unexpected adapter key {key}"
            t = t.float().clone().requires_grad_(True)
            self.raw[key] = t
            self.ab.setdefault(m.group(1), [None, None])["AB".index(m.group(3))] = t

    def lin(self, x, name):
        y = F.linear(x, self.w[name + ".weight"])
        if name in self.ab:
            A, B = self.ab[name]
            y = y + (x.float() @ A.t() @ B.t()) * self.scale
        return y

    def attention(self, x, i, cos, sin, mask):
        p = f"model.layers.{i}.self_attn."
        B, T, _ = x.shape
        q = self.lin(x, p + "q_proj").view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.lin(x, p + "k_proj").view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.lin(x, p + "v_proj").view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + self.rotate_half(q) * sin
        k = k * cos + self.rotate_half(k) * sin
        n_rep = self.nh // self.nkv
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd) + mask
        a = F.softmax(s, dim=-1, dtype=torch.float32)
        o = torch.matmul(a, v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.lin(o, p + "o_proj")

    def mlp(self, x, i):
        p = f"model.layers.{i}.mlp."
        return self.lin(F.silu(self.lin(x, p + "gate_proj")) * self.lin(x, p + "up_proj"),
                        p + "down_proj")

    def forward(self, ids):
        B, T = ids.shape
        x = F.embedding(ids, self.w["model.embed_tokens.weight"])
        cos, sin = self.rope_cos_sin(T)
        mask = torch.full((T, T), torch.finfo(self.dt).min).triu(1)
        for i in range(self.L):
            p = f"model.layers.{i}."
            x = x + self.attention(self.rmsnorm(x, self.w[p + "input_layernorm.weight"]), i, cos, sin, mask)
            x = x + self.mlp(self.rmsnorm(x, self.w[p + "post_attention_layernorm.weight"]), i)
        x = self.rmsnorm(x, self.w["model.norm.weight"])
        return F.linear(x, self.w["lm_head.weight"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("adapter_dir")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--loss", choices=["ce", "sum"], default="ce")
    a = ap.parse_args()
    m = LoraLlama(a.model_dir, a.adapter_dir)
    ids = parse_ids(a.ids)
    logits = m.forward(ids)
    if a.loss == "ce":
        V = logits.shape[-1]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    else:
        loss = logits.sum()
    loss.backward()
    out = {"logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
    for key, t in m.raw.items():
        out["grad:" + key] = t.grad.contiguous()
    safetensors_py.save(a.out, out)


if __name__ == "__main__":
    main()
