#!/usr/bin/env python3
"""Largest relative difference between two PEFT adapters (adapter_model.safetensors), per
tensor max|a-b| / max|a|, for the cluster tests' tolerance checks. Reads the safetensors
format directly (8-byte header length, JSON header, raw little-endian fp32 data): no
third-party modules.
  cluster_compare.py A.safetensors B.safetensors TOLERANCE   (exit 1 when above it)"""
import array
import json
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}, expected F32")
        lo, hi = info["data_offsets"]
        out[name] = array.array("f", data[lo:hi])
    return out


a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if sorted(a) != sorted(b):
    sys.exit(f"different tensors: {sorted(set(a) ^ set(b))}")
worst = max(max(abs(x - y) for x, y in zip(a[k], b[k])) / max(max(map(abs, a[k])), 1e-12)
            for k in a)
print(f"max relative difference {worst:.3g} (tolerance {tol:g})")
sys.exit(0 if worst <= tol else 1)
