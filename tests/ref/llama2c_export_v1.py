#!/usr/bin/env python3
"""Rewrites a legacy (version 0) llama2.c checkpoint as a version-1 file, so the C++
importer can be tested on both. Written from the format description, not from llama2.c.

Usage: llama2c_export_v1.py IN_legacy.bin OUT_v1.bin

Version-1 layout (all little-endian):
  header, exactly 256 bytes:
    uint32 magic 0x616b3432 ("ak42"), int32 version = 1,
    7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (always positive),
               max_seq_len,
    uint8 shared_classifier (1: the classifier is the token embedding),
    zero bytes up to offset 256.
  then float32 tensors, row-major, in this order (each "x L" is all layers, layer 0 first):
    rms_att [dim] x L, rms_ffn [dim] x L, rms_final [dim],
    token_embedding [vocab, dim],
    wq [dim, dim] x L, wk [kv_dim, dim] x L, wv [kv_dim, dim] x L, wo [dim, dim] x L,
    w1 [hidden, dim] x L, w2 [dim, hidden] x L, w3 [hidden, dim] x L,
    wcls [vocab, dim] only when shared_classifier == 0.
  Unlike version 0 there are no freq_cis tables, and the norms come first.
Weights stay in Meta's layout (RoPE on interleaved pairs), as in version 0.
"""
import argparse
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama2c_ref import MAGIC, read_checkpoint  # noqa: E402


def write_v1(path, c, w):
    hdr = struct.pack("<Ii7iB", MAGIC, 1, c["dim"], c["hidden_dim"], c["n_layers"], c["n_heads"],
                      c["n_kv_heads"], c["vocab_size"], c["seq_len"], int(c["shared_classifier"]))
    order = ["rms_att", "rms_ffn", "rms_final", "tok", "wq", "wk", "wv", "wo", "w1", "w2", "w3"]
    if not c["shared_classifier"]:
        order.append("wcls")
    with open(path, "wb") as f:
        f.write(hdr + b"\0" * (256 - len(hdr)))
        for k in order:  # [L, ...] tensors are already layer-major = per-layer concatenation
            f.write(w[k].contiguous().numpy().astype("<f4").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inp")
    ap.add_argument("out")
    a = ap.parse_args()
    c, w = read_checkpoint(a.inp)
    if c["version"] != 0:
        raise SystemExit(f"llama2c_export_v1: {a.inp} is version {c['version']}, expected legacy 0")
    write_v1(a.out, c, w)
    print(f"wrote {a.out} (version 1, shared_classifier={int(c['shared_classifier'])})")


if __name__ == "__main__":
    main()
