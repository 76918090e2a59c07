#!/usr/bin/env python3
"""Reference greedy decoder for llama2.c checkpoints, run directly in Meta's layout
(RoPE on interleaved pairs), independent of any Hugging Face conversion.

Usage: llama2c_ref.py CKPT.bin [--steps 64] [--dtype F32|BF16] [--out OUT.safetensors]

Prints the greedy ids (argmax, lowest id on ties) generated from BOS = 1, space-separated
on one line, BOS excluded. Full recompute each step (the models are tiny).
--out also writes "input_ids" I64 [1,T] = BOS + all generated ids but the last, and
"logits" F32 [1,T,V] of one forward over them (for logit-level comparisons).
--dtype BF16: weights cast to bf16, matmuls and elementwise ops in bf16; RMSNorm statistics,
RoPE angles and softmax in fp32, cast back (as HF does with torch_dtype=bfloat16).

Checkpoint formats (all little-endian, weights float32):
 version 0 ("legacy"): 7 x int32 header dim, hidden_dim, n_layers, n_heads, n_kv_heads,
   vocab_size (negative => the classifier is not shared and is stored at the end), seq_len;
   then token_embedding [V,dim], rms_att [L,dim], wq [L,dim,dim], wk [L,kv_dim,dim],
   wv [L,kv_dim,dim], wo [L,dim,dim], rms_ffn [L,dim], w1 [L,hidden,dim], w2 [L,dim,hidden],
   w3 [L,hidden,dim], rms_final [dim], freq_cis_real [seq_len,head_size/2],
   freq_cis_imag [seq_len,head_size/2] (ignored), then wcls [V,dim] when not shared.
 version 1: see llama2c_export_v1.py (256-byte header starting with magic 0x616b3432).
"""
import argparse
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MAGIC = 0x616B3432  # "ak42"
EPS = 1e-5
THETA = 10000.0
BOS = 1


def read_checkpoint(path):
    """Returns (cfg dict, weights dict of fp32 tensors) for a version 0 or version 1 file.
    Weight names: tok [V,dim], rms_att [L,dim], wq, wk, wv, wo, rms_ffn, w1, w2, w3 [L,...],
    rms_final [dim], wcls [V,dim] (the same tensor as tok when shared)."""
    with open(path, "rb") as f:
        raw = f.read()
    magic, version = struct.unpack_from("<Ii", raw, 0)
    if magic == MAGIC:
        if version != 1:
            raise SystemExit(f"llama2c_ref: unsupported llama2.c version {version}")
        dim, hidden, L, nh, nkv, V, seq = struct.unpack_from("<7i", raw, 8)
        shared = raw[36] != 0
        off = 256
    else:
        version = 0
        dim, hidden, L, nh, nkv, V, seq = struct.unpack_from("<7i", raw, 0)
        shared = V > 0
        V = abs(V)
        off = 28
    hs = dim // nh
    kvd = nkv * hs
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=L, n_heads=nh, n_kv_heads=nkv, vocab_size=V,
               seq_len=seq, shared_classifier=shared, version=version)
    data = np.frombuffer(raw, dtype="<f4", offset=off)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        if pos + n > data.size:
            raise SystemExit(f"llama2c_ref: {path} is truncated")
        t = torch.from_numpy(data[pos:pos + n].astype(np.float32)).reshape(shape)
        pos += n
        return t

    w = {}
    if version == 0:
        w["tok"] = take(V, dim)
        w["rms_att"] = take(L, dim)
        w["wq"], w["wk"], w["wv"], w["wo"] = take(L, dim, dim), take(L, kvd, dim), take(L, kvd, dim), take(L, dim, dim)
        w["rms_ffn"] = take(L, dim)
        w["w1"], w["w2"], w["w3"] = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
        w["rms_final"] = take(dim)
        take(seq, hs // 2)  # freq_cis_real (unused: recomputed)
        take(seq, hs // 2)  # freq_cis_imag
    else:  # version 1 order, see llama2c_export_v1.py
        w["rms_att"], w["rms_ffn"], w["rms_final"] = take(L, dim), take(L, dim), take(dim)
        w["tok"] = take(V, dim)
        w["wq"], w["wk"], w["wv"], w["wo"] = take(L, dim, dim), take(L, kvd, dim), take(L, kvd, dim), take(L, dim, dim)
        w["w1"], w["w2"], w["w3"] = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
    w["wcls"] = w["tok"] if shared else take(V, dim)
    if pos != data.size:
        raise SystemExit(f"llama2c_ref: {data.size - pos} trailing floats in {path}")
    return cfg, w


class MetaLlama:
    def __init__(self, cfg, w, dtype):
        self.c, self.dt = cfg, dtype
        self.w = {k: v.to(dtype) for k, v in w.items()}
        self.hs = cfg["dim"] // cfg["n_heads"]

    def rmsnorm(self, x, weight):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
        return weight * h.to(x.dtype)

    def rope(self, x, cos, sin):
        # x [T, heads, hs]; rotate each interleaved pair (x[2i], x[2i+1]) by angle pos*freq_i,
        # i.e. multiply the complex number x[2i] + j x[2i+1] by exp(j*angle).
        a, b = x[..., 0::2], x[..., 1::2]
        ra = a * cos + (-b) * sin
        rb = b * cos + a * sin
        return torch.stack((ra, rb), dim=-1).flatten(-2)

    @torch.no_grad()
    def logits(self, ids):
        c, w, hs = self.c, self.w, self.hs
        nh, nkv = c["n_heads"], c["n_kv_heads"]
        T = len(ids)
        x = w["tok"][torch.tensor(ids)]  # [T, dim]
        # freq_i = 1 / theta^(2i/hs), angles in fp32, cos/sin cast to the compute dtype
        freq = 1.0 / (THETA ** (torch.arange(0, hs, 2).float() / hs))
        ang = torch.outer(torch.arange(T, dtype=torch.float32), freq)  # [T, hs/2]
        cos, sin = ang.cos().to(self.dt)[:, None, :], ang.sin().to(self.dt)[:, None, :]
        mask = torch.full((T, T), torch.finfo(self.dt).min, dtype=self.dt).triu(1)
        for l in range(c["n_layers"]):
            xb = self.rmsnorm(x, w["rms_att"][l])
            q = F.linear(xb, w["wq"][l]).view(T, nh, hs)
            k = F.linear(xb, w["wk"][l]).view(T, nkv, hs)
            v = F.linear(xb, w["wv"][l]).view(T, nkv, hs)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            # query head h reads kv head h // (nh/nkv)
            rep = nh // nkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            s = torch.matmul(q.transpose(0, 1), k.permute(1, 2, 0)) / math.sqrt(hs)  # [nh, T, T]
            att = F.softmax(s + mask, dim=-1, dtype=torch.float32).to(self.dt)
            o = torch.matmul(att, v.transpose(0, 1)).transpose(0, 1).reshape(T, nh * hs)
            x = x + F.linear(o, w["wo"][l])
            xb = self.rmsnorm(x, w["rms_ffn"][l])
            x = x + F.linear(F.silu(F.linear(xb, w["w1"][l])) * F.linear(xb, w["w3"][l]), w["w2"][l])
        x = self.rmsnorm(x, w["rms_final"])
        return F.linear(x, w["wcls"]).float()  # [T, V]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--dtype", choices=["F32", "BF16"], default="F32")
    ap.add_argument("--out")
    ap.add_argument("--round-bf16", action="store_true",
                    help="round the weights to bf16 first (a bf16 copy), then compute in --dtype")
    a = ap.parse_args()
    cfg, w = read_checkpoint(a.ckpt)
    if a.round_bf16:
        w = {k: v.to(torch.bfloat16).to(torch.float32) for k, v in w.items()}
    m = MetaLlama(cfg, w, {"F32": torch.float32, "BF16": torch.bfloat16}[a.dtype])
    seq = [BOS]
    for _ in range(a.steps):
        seq.append(int(m.logits(seq)[-1].argmax()))  # argmax: first (lowest) index on ties
    print(" ".join(map(str, seq[1:])))
    if a.out:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import safetensors_py
        ids = seq[:-1]
        safetensors_py.save(a.out, {"input_ids": torch.tensor([ids], dtype=torch.int64),
                                    "logits": m.logits(ids).unsqueeze(0).contiguous()})


if __name__ == "__main__":
    main()
