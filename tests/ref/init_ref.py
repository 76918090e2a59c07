#!/usr/bin/env python3
"""Reference LoRA initializations that depend on the weights, written from the papers with
Debian's python3-torch (independent of the C++ code).

Usage: init_ref.py pissa MODEL_DIR OUT.safetensors --r 4 --alpha 8 [--rslora]
                   --targets q_proj,v_proj|all-linear

pissa (Meng et al. 2404.02948, PEFT's init_lora_weights="pissa"): for every targeted
weight W [out, in] of model.safetensors, the thin SVD W = U S V^T in float32 and the
LoRA scale s = alpha / r (alpha / sqrt(r) with --rslora):
  "<module>.lora_A"   = diag(sqrt(S_r / s)) V_r^T   [r, in]
  "<module>.lora_B"   = U_r diag(sqrt(S_r / s))     [out, r]
  "<module>.residual" = W - s * B A                 [out, in]
with <module> = "model.layers.<i>.self_attn.q_proj" etc. Singular vectors are defined up
to sign: compare row i of A and column i of B up to one common sign.
"""
import argparse
import math
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=["pissa"])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--r", type=int, required=True)
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--rslora", action="store_true")
    ap.add_argument("--targets", required=True)
    a = ap.parse_args()
    pissa(a)


if __name__ == "__main__":
    main()
