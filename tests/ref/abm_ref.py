#!/usr/bin/env python3
"""Reference ABM boundary loss and its gradient, written from DESIGN §1 in plain torch.

Usage: abm_ref.py IN.safetensors OUT.safetensors
IN holds, for layers j = 0..n-1: "z{j}" F32 [B,T,I] student pre-activations, "t{j}" F32
[B,T,I] teacher pre-activations (may contain exact zeros), plus "real" F32 [B,T] (1 = real
token, 0 = padding) and "margin" F32 [1].
  tau = +1 where t > 0 else -1 (0 counts as inactive)
  l_j = mean over real tokens and all units of max(0, m - tau z)^2
  L   = (1/n) sum_j c_j l_j,   c_j = ((j+1)/n)^2
OUT: "loss" F32 [1] and "grad{j}" = dL/dz_j.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    t = safetensors_py.load(src)
    n = sum(1 for k in t if k.startswith("z"))
    real = t["real"].double() > 0.5
    m = float(t["margin"][0])
    zs = [t[f"z{j}"].double().requires_grad_(True) for j in range(n)]
    total = torch.zeros((), dtype=torch.float64)
    for j in range(n):
        tau = torch.where(t[f"t{j}"] > 0, 1.0, -1.0).double()
        hinge = torch.clamp(m - tau * zs[j], min=0.0) ** 2      # [B,T,I]
        per_unit = hinge[real]                                   # [tokens, I]
        c = ((j + 1) / n) ** 2
        total = total + c * per_unit.mean()
    total = total / n
    total.backward()
    out = {"loss": total.detach().float().reshape(1)}
    for j in range(n):
        out[f"grad{j}"] = zs[j].grad.float()
    safetensors_py.save(dst, out)


if __name__ == "__main__":
    main()
