#!/usr/bin/env python3
"""Writes a random tiny llama2.c legacy (version 0) checkpoint, for importer tests of the
paths stories260K does not cover (untied classifier = negative vocab_size in the header).

Usage: make_tiny_llama2c.py OUT.bin [--seed 0] [--untied] [--dim 48] [--hidden 80]
                            [--layers 2] [--heads 6] [--kv-heads 2] [--vocab 67] [--seq-len 64]

Layout: see llama2c_ref.py. freq_cis tables are written like llama2.c does
(cos/sin of pos / 10000^(2i/head_size), [seq_len, head_size/2] each).
Convert to version 1 with llama2c_export_v1.py, to HF layout with hf_from_llama2c.py.
"""
import argparse
import struct

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--dim", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=80)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=67)
    ap.add_argument("--seq-len", type=int, default=64)
    a = ap.parse_args()
    D, Hd, L, V, S = a.dim, a.hidden, a.layers, a.vocab, a.seq_len
    hs = D // a.heads
    kvd = a.kv_heads * hs
    g = torch.Generator().manual_seed(a.seed)
    w = lambda *s: torch.randn(*s, generator=g) * 0.15  # noqa: E731
    nrm = lambda *s: 1.0 + torch.randn(*s, generator=g) * 0.1  # noqa: E731
    freq = 1.0 / (10000.0 ** (torch.arange(0, hs, 2).float() / hs))
    ang = torch.outer(torch.arange(S).float(), freq)
    tensors = [w(V, D), nrm(L, D), w(L, D, D), w(L, kvd, D), w(L, kvd, D), w(L, D, D), nrm(L, D),
               w(L, Hd, D), w(L, D, Hd), w(L, Hd, D), nrm(D), ang.cos(), ang.sin()]
    if a.untied:
        tensors.append(w(V, D))
    with open(a.out, "wb") as f:
        f.write(struct.pack("<7i", D, Hd, L, a.heads, a.kv_heads, -V if a.untied else V, S))
        for t in tensors:
            f.write(t.contiguous().numpy().astype("<f4").tobytes())
    print(f"wrote {a.out} (legacy v0, {'untied' if a.untied else 'tied'})")


if __name__ == "__main__":
    main()
