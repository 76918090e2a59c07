#!/usr/bin/env python3
"""PyTorch eager reference for `abmlora bench --what train`: a LoRA train step on a randomly
initialized LLaMA, written the way a plain PyTorch/PEFT user would write it, timed.

Model: hand-written HF-LLaMA decoder layers (RMSNorm in fp32, RoPE rotate-half, causal
softmax in fp32, SwiGLU), frozen base weights (requires_grad False), PEFT-style LoRA on the
target projections: result = base(x) + lora_B(lora_A(dropout(x.to(fp32)))) * alpha / r, A and
B fp32 parameters trained by torch.optim.AdamW. One step = forward + mean cross-entropy over
all positions but the last + backward + AdamW step (clip at 1.0, as the trainer does).

Dtypes: fp32 (weights fp32, no autocast) and bf16 (weights fp32, torch.autocast("cpu",
bfloat16) around the forward: the usual mixed-precision recipe; --bf16-weights stores the
frozen base in bf16 instead).

Prints one JSON object per dtype on stdout:
  {"dtype": "fp32", "threads": 2, "tokens_per_s": ..., "step_s": [...], "loss": ...}
Usage: eager_train_bench.py [--dtypes fp32,bf16] [--threads 2] [--steps 3] [--warmup 1]
       [--hidden 512 --layers 8 --heads 8 --intermediate 1376 --vocab 4096 --seq 256
        --micro-batch 8 --lora-r 8 --lora-alpha 16 --lora-dropout 0.0]
       [--profile N]  (torch.profiler table of the top N ops of one step, on stderr)
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


class LoraLlama(torch.nn.Module):
    def __init__(self, a, wdtype):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        H, I, V = a.hidden, a.intermediate, a.vocab
        self.nh, self.hd, self.eps = a.heads, a.hidden // a.heads, 1e-5
        self.scale = a.lora_alpha / a.lora_r

        def frozen(*shape):
            return torch.nn.Parameter((torch.randn(*shape, generator=g) * 0.02).to(wdtype),
                                      requires_grad=False)

        self.embed = frozen(V, H)
        self.head = frozen(V, H)
        self.norm = torch.nn.Parameter(torch.ones(H, dtype=wdtype), requires_grad=False)
        self.layers = torch.nn.ModuleList()
        self.lora = torch.nn.ParameterList()
        shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H),
                  "gate": (I, H), "up": (I, H), "down": (H, I)}
        for _ in range(a.layers):
            m = torch.nn.Module()
            m.in_norm = torch.nn.Parameter(torch.ones(H, dtype=wdtype), requires_grad=False)
            m.post_norm = torch.nn.Parameter(torch.ones(H, dtype=wdtype), requires_grad=False)
            m.w = torch.nn.ParameterDict()
            m.A = torch.nn.ParameterDict()
            m.B = torch.nn.ParameterDict()
            for n, (o, i) in shapes.items():
                m.w[n] = frozen(o, i)
                # PEFT's kaiming-uniform A; B would be 0 at init, random here so that the
                # step does real work in every term (timing does not depend on values)
                m.A[n] = torch.nn.Parameter(torch.empty(a.lora_r, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i), generator=g))
                m.B[n] = torch.nn.Parameter(torch.randn(o, a.lora_r, generator=g) * 0.01)
            self.layers.append(m)
        self.drop = torch.nn.Dropout(a.lora_dropout)
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        t = torch.arange(a.seq).float()
        emb = torch.cat([torch.outer(t, inv)] * 2, -1)
        self.cos, self.sin = emb.cos(), emb.sin()  # [T, hd] fp32
        self.mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)

    def rmsnorm(self, x, w):
        dt = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return w * h.to(dt)

    def lin(self, m, n, x):
        y = F.linear(x, m.w[n])
        A, B = m.A[n], m.B[n]
        return y + F.linear(F.linear(self.drop(x.to(A.dtype)), A), B) * self.scale

    @staticmethod
    def rot(x):
        x1, x2 = x.chunk(2, -1)
        return torch.cat([-x2, x1], -1)

    def layer(self, m, x):
        Bsz, T, H = x.shape
        h = self.rmsnorm(x, m.in_norm)
        q = self.lin(m, "q", h).view(Bsz, T, self.nh, self.hd).transpose(1, 2)
        k = self.lin(m, "k", h).view(Bsz, T, self.nh, self.hd).transpose(1, 2)
        v = self.lin(m, "v", h).view(Bsz, T, self.nh, self.hd).transpose(1, 2)
        cos, sin = self.cos.to(q.dtype), self.sin.to(q.dtype)
        q = q * cos + self.rot(q) * sin
        k = k * cos + self.rot(k) * sin
        s = q @ k.transpose(2, 3) / math.sqrt(self.hd) + self.mask
        p = F.softmax(s, -1, dtype=torch.float32).to(q.dtype)
        o = (p @ v).transpose(1, 2).reshape(Bsz, T, H)
        x = x + self.lin(m, "o", o)
        h = self.rmsnorm(x, m.post_norm)
        return x + self.lin(m, "down", F.silu(self.lin(m, "gate", h)) * self.lin(m, "up", h))

    def forward(self, ids):
        x = F.embedding(ids, self.embed)
        for m in self.layers:
            x = self.layer(m, x)
        return F.linear(self.rmsnorm(x, self.norm), self.head).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    for k, v in [("hidden", 512), ("layers", 8), ("heads", 8), ("intermediate", 1376),
                 ("vocab", 4096), ("seq", 256), ("micro-batch", 8), ("lora-r", 8)]:
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    ap.add_argument("--bf16-weights", action="store_true")
    ap.add_argument("--profile", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for dt in a.dtypes.split(","):
        torch.manual_seed(0)
        bf16 = dt == "bf16"
        model = LoraLlama(a, torch.bfloat16 if bf16 and a.bf16_weights else torch.float32)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        ids = torch.randint(a.vocab, (a.micro_batch, a.seq), generator=torch.Generator().manual_seed(1))

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        for _ in range(a.warmup):
            step()
        times, loss = [], 0.0
        for _ in range(a.steps):
            t = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t)
        if a.profile:
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.profile),
                  file=sys.stderr)
        best = min(times)
        print(json.dumps({"dtype": dt, "threads": a.threads, "tokens_per_s": a.micro_batch * a.seq / best,
                          "step_s": times, "loss": loss}), flush=True)


if __name__ == "__main__":
    main()
