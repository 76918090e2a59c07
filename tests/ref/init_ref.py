#!/usr/bin/env python3
"""Reference LoRA initializations that depend on the weights, written from the papers with
Debian's python3-torch (independent of the C++ code).

Usage: init_ref.py pissa MODEL_DIR OUT.safetensors --r 4 --alpha 8 [--rslora]
                   --targets q_proj,v_proj|all-linear
       init_ref.py lora-ga MODEL_DIR OUT.safetensors --r 4 --alpha 8 --targets ...
                   --data ROWS.jsonl --rows 3,0,5

pissa (Meng et al. 2404.02948, PEFT's init_lora_weights="pissa"): for every targeted
weight W [out, in] of model.safetensors, the thin SVD W = U S V^T in float32 and the
LoRA scale s = alpha / r (alpha / sqrt(r) with --rslora):
  "<module>.lora_A"   = diag(sqrt(S_r / s)) V_r^T   [r, in]
  "<module>.lora_B"   = U_r diag(sqrt(S_r / s))     [out, r]
  "<module>.residual" = W - s * B A                 [out, in]
with <module> = "model.layers.<i>.self_attn.q_proj" etc. Singular vectors are defined up
to sign: compare row i of A and column i of B up to one common sign.

lora-ga (Wang et al. 2407.05000, the paper's defaults: "ArB2r" layout, "stable" scale with
gamma = 16): the rows --rows of the pre-tokenized ROWS.jsonl ({"input_ids": [...]}, every
token after the first is a target) give the loss L = sum of the next-token cross-entropies /
number of targets (the hand-written forward of llama_ref.py, float32), and G = dL/dW of
every targeted weight; with G = U S V^T (thin SVD) and m = out:
  "<module>.lora_A"   = V^T[0:r]     m^(1/4) / sqrt(gamma)   [r, in]
  "<module>.lora_B"   = U[:, r:2r]   m^(1/4) / sqrt(gamma)   [out, r]
  "info_loss"         = sum over modules of sum_{i>2r} S_i^2 / sum of ||G||^2   [1]
(the relative information loss of this start: A spans the top r right singular vectors,
B the next r left ones, so the tangent space {X A + B Y} keeps S_1..S_2r). Each singular
vector has its own sign: compare row i of A and column i of B each up to a sign (and
build the offset base W - s B A from the sign-aligned factors).
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
from llama_ref import RefLlama  # noqa: E402

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def pissa(a):
    weights = safetensors_py.load(os.path.join(a.model_dir, "model.safetensors"))
    kinds = SEVEN if a.targets == "all-linear" else a.targets.split(",")
    s = a.alpha / (math.sqrt(a.r) if a.rslora else a.r)
    out = {}
    for name, w in weights.items():
        m = re.fullmatch(r"(model\.layers\.\d+\.(self_attn|mlp)\.(\w+))\.weight", name)
        if not m or m.group(3) not in kinds:
            continue
        w = w.to(torch.float32)
        u, sv, vh = torch.linalg.svd(w, full_matrices=False)
        root = torch.sqrt(sv[:a.r] / s)
        A = torch.diag(root) @ vh[:a.r]
        B = u[:, :a.r] @ torch.diag(root)
        out[m.group(1) + ".lora_A"] = A.contiguous()
        out[m.group(1) + ".lora_B"] = B.contiguous()
        out[m.group(1) + ".residual"] = (w - s * B @ A).contiguous()
    assert out, "no targeted weights found"
    safetensors_py.save(a.out, out)


def lora_ga(a):
    gamma = 16.0
    ref = RefLlama(a.model_dir, torch.float32)
    kinds = SEVEN if a.targets == "all-linear" else a.targets.split(",")
    names = [n for n in ref.w
             if (m := re.fullmatch(r"model\.layers\.\d+\.(self_attn|mlp)\.(\w+)\.weight", n))
             and m.group(2) in kinds]
    assert names, "no targeted weights found"
    for n in names:
        ref.w[n].requires_grad_(True)
    with open(a.data) as f:
        rows = [json.loads(line)["input_ids"] for line in f if line.strip()]
    total, targets = torch.zeros(()), 0
    for i in (int(t) for t in a.rows.split(",")):
        ids = torch.tensor([rows[i]], dtype=torch.int64)
        logits = ref.forward(ids)[0, :-1]
        total = total + F.cross_entropy(logits, ids[0, 1:], reduction="sum")
        targets += ids.shape[1] - 1
    grads = torch.autograd.grad(total / targets, [ref.w[n] for n in names])
    out, kept, norm = {}, 0.0, 0.0
    for n, g in zip(names, grads):
        u, sv, vh = torch.linalg.svd(g.double(), full_matrices=False)
        k = g.shape[0] ** 0.25 / math.sqrt(gamma)
        A = (vh[:a.r] * k).float()
        B = (u[:, a.r:2 * a.r] * k).float()
        module = n[:-len(".weight")]
        out[module + ".lora_A"] = A.contiguous()
        out[module + ".lora_B"] = B.contiguous()
        kept += float((sv[:2 * a.r] ** 2).sum())
        norm += float((sv ** 2).sum())
    out["info_loss"] = torch.tensor([(norm - kept) / norm], dtype=torch.float32)
    safetensors_py.save(a.out, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=["pissa", "lora-ga"])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--r", type=int, required=True)
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--rslora", action="store_true")
    ap.add_argument("--targets", required=True)
    ap.add_argument("--data", help="lora-ga: pre-tokenized rows (JSONL)")
    ap.add_argument("--rows", help="lora-ga: comma-separated row numbers of --data")
    a = ap.parse_args()
    pissa(a) if a.method == "pissa" else lora_ga(a)


if __name__ == "__main__":
    main()
