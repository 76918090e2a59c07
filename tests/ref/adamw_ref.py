"""torch.optim.AdamW + clip_grad_norm_ on fixed tensors: the reference for src/train/adamw.

Usage: adamw_ref.py IN.safetensors OUT.safetensors --lr 1e-2 --wd 0.1 --steps 5 --clip 0.5
IN holds p0, p1 (params) and g0_<step>, g1_<step> (grads per step). Each step: set grads,
clip the global norm to --clip (0 = off), AdamW step. OUT holds the final p0, p1 and the
moments m0, v0, m1, v1.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("inp")
ap.add_argument("out")
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--wd", type=float, required=True)
ap.add_argument("--steps", type=int, required=True)
ap.add_argument("--clip", type=float, default=0.0)
a = ap.parse_args()
t = safetensors_py.load(a.inp)
ps = [t["p0"].clone().requires_grad_(True), t["p1"].clone().requires_grad_(True)]
opt = torch.optim.AdamW(ps, lr=a.lr, weight_decay=a.wd, betas=(0.9, 0.999), eps=1e-8)
for s in range(a.steps):
    for i, p in enumerate(ps):
        p.grad = t[f"g{i}_{s}"].clone()
    if a.clip > 0:
        torch.nn.utils.clip_grad_norm_(ps, a.clip)
    opt.step()
out = {"p0": ps[0].detach(), "p1": ps[1].detach()}
for i, p in enumerate(ps):
    st = opt.state[p]
    out[f"m{i}"] = st["exp_avg"]
    out[f"v{i}"] = st["exp_avg_sq"]
safetensors_py.save(a.out, out)
