#!/usr/bin/env python3
"""Reference forward pass of Hugging Face LlamaForCausalLM (transformers 4.36 semantics),
written from the spec, for checking the C++ model. Python is a test oracle only.

Usage:
  llama_ref.py MODEL_DIR --ids "1,5,7;3,4,9" --out OUT.safetensors [--dtype F32|BF16] [--hf]
  llama_ref.py MODEL_DIR --greedy N [--ids "1,5"] [--dtype F32|BF16] [--hf]

--ids: ';'-separated rows of ','-separated token ids, all rows of equal length (a batch).
--out: writes "input_ids" I64 [B,T] and "logits" F32 [B,T,V].
--greedy N: greedy-decodes N tokens (argmax, lowest id on ties, full recompute each step)
            from each row of --ids (default: the single prompt [bos_token_id]) and prints the
            generated ids (prompt excluded) space-separated, one line per row.
--dtype: compute dtype; weights are cast to it (BF16 = HF's torch_dtype=torch.bfloat16).
--hf: run the real transformers.LlamaForCausalLM.from_pretrained (eager attention) instead
      of the hand-written forward; exits 3 when transformers is not importable.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16}


def load_weights(model_dir):
    """model.safetensors, or the shards listed in model.safetensors.index.json."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for fn in files:
        w.update(safetensors_py.load(os.path.join(model_dir, fn)))
    return w


class RefLlama:
    """Hand-written LlamaForCausalLM forward (no KV cache, no padding mask)."""

    def __init__(self, model_dir, dtype):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.c = c
        self.dt = dtype
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nh
        self.hd = c.get("head_dim") or self.H // self.nh
        self.L = c["num_hidden_layers"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.max_pos = c.get("max_position_embeddings", 2048)
        self.bos = c.get("bos_token_id", 1)
        rs = c.get("rope_scaling")
        self.rope_factor = 1.0
        if rs is not None:
            if rs.get("type") != "linear":
                raise SystemExit(f"llama_ref: unsupported rope_scaling {rs}")
            self.rope_factor = float(rs["factor"])
        # HF: from_pretrained(torch_dtype=dt) casts every loaded weight to dt
        self.w = {k: v.to(dtype) for k, v in load_weights(model_dir).items()}
        if c.get("tie_word_embeddings", False) or "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    def rmsnorm(self, x, weight):
        # HF LlamaRMSNorm: fp32 statistics, cast back to the input dtype, then times weight
        in_dt = x.dtype
        h = x.float()
        var = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(var + self.eps)
        return weight * h.to(in_dt)

    def rope_cos_sin(self, T):
        # HF LlamaRotaryEmbedding: fp32 inv_freq and angles; cache cast to the model dtype.
        # Linear scaling divides the positions by the factor.
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2).float() / self.hd))
        n = max(T, self.max_pos)
        t = torch.arange(n, dtype=torch.float32) / self.rope_factor
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # [n, hd]: both halves share angles
        return emb.cos().to(self.dt)[:T], emb.sin().to(self.dt)[:T]

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def attention(self, x, i, cos, sin, mask):
        p = f"model.layers.{i}.self_attn."
        B, T, _ = x.shape
        q = F.linear(x, self.w[p + "q_proj.weight"]).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = F.linear(x, self.w[p + "k_proj.weight"]).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = F.linear(x, self.w[p + "v_proj.weight"]).view(B, T, self.nkv, self.hd).transpose(1, 2)
        # RoPE (rotate_half form), elementwise in the compute dtype
        q = q * cos + self.rotate_half(q) * sin
        k = k * cos + self.rotate_half(k) * sin
        # GQA: every KV head serves n_rep consecutive query heads (HF repeat_kv)
        n_rep = self.nh // self.nkv
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        s = s + mask  # additive causal mask: 0 or finfo(dtype).min
        a = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(a, v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return F.linear(o, self.w[p + "o_proj.weight"])

    def mlp(self, x, i):
        p = f"model.layers.{i}.mlp."
        gate = F.linear(x, self.w[p + "gate_proj.weight"])
        up = F.linear(x, self.w[p + "up_proj.weight"])
        return F.linear(F.silu(gate) * up, self.w[p + "down_proj.weight"])

    @torch.no_grad()
    def logits(self, ids):
        return self.forward(ids)

    def forward(self, ids):
        """Logits [B, T, V] float32, differentiable in the weights (init_ref.py lora-ga)."""
        B, T = ids.shape
        x = F.embedding(ids, self.w["model.embed_tokens.weight"])
        cos, sin = self.rope_cos_sin(T)
        mask = torch.full((T, T), torch.finfo(self.dt).min, dtype=self.dt).triu(1)
        for i in range(self.L):
            p = f"model.layers.{i}."
            x = x + self.attention(self.rmsnorm(x, self.w[p + "input_layernorm.weight"]), i, cos, sin, mask)
            x = x + self.mlp(self.rmsnorm(x, self.w[p + "post_attention_layernorm.weight"]), i)
        x = self.rmsnorm(x, self.w["model.norm.weight"])
        return F.linear(x, self.w["lm_head.weight"]).float()


class HFLlama:
    """The real transformers implementation, for cross-checking RefLlama."""

    def __init__(self, model_dir, dtype):
        try:
            import transformers
        except ImportError:
            print("llama_ref: --hf needs transformers (run launch/oracle_venv.sh and use its python)",
                  file=sys.stderr)
            sys.exit(3)
        self.m = transformers.LlamaForCausalLM.from_pretrained(
            model_dir, torch_dtype=dtype, attn_implementation="eager").eval()
        self.bos = self.m.config.bos_token_id

    @torch.no_grad()
    def logits(self, ids):
        return self.m(input_ids=ids).logits.float()


def parse_ids(s):
    rows = [[int(t) for t in r.split(",") if t.strip()] for r in s.split(";") if r.strip()]
    if not rows or len({len(r) for r in rows}) != 1:
        raise SystemExit("llama_ref: --ids rows must be non-empty and of equal length")
    return torch.tensor(rows, dtype=torch.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--ids")
    ap.add_argument("--out")
    ap.add_argument("--dtype", choices=list(DTYPES), default="F32")
    ap.add_argument("--hf", action="store_true")
    ap.add_argument("--greedy", type=int, default=0)
    a = ap.parse_args()
    if not a.greedy and not (a.ids and a.out):
        ap.error("need --ids and --out, or --greedy N")
    torch.manual_seed(0)
    model = (HFLlama if a.hf else RefLlama)(a.model_dir, DTYPES[a.dtype])

    if a.greedy:
        ids = parse_ids(a.ids) if a.ids else torch.tensor([[model.bos]], dtype=torch.int64)
        for row in ids:
            seq = row.unsqueeze(0)
            for _ in range(a.greedy):
                nxt = model.logits(seq)[0, -1].argmax()  # argmax: first (lowest) index on ties
                seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
            print(" ".join(str(int(t)) for t in seq[0, row.numel():]))
    if a.out:
        ids = parse_ids(a.ids)
        safetensors_py.save(a.out, {"input_ids": ids, "logits": model.logits(ids).contiguous()})


if __name__ == "__main__":
    main()
