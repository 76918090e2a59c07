#include "model/llama_layer.h"

#include <cmath>
#include <limits>

#include "core/check.h"
#include "model/rope.h"

namespace abm {
namespace {

// x W^T with W upcast inside the op; saves the stored W (not the cast) for backward. W is
// frozen, so only x gets a gradient: dL/dx = g W.
struct UpcastProject : torch::autograd::Function<UpcastProject> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w) {
    ctx->saved_data["w"] = w;
    return at::linear(x, w.to(x.scalar_type()));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    at::Tensor w = ctx->saved_data["w"].toTensor();
    return {at::matmul(g[0], w.to(g[0].scalar_type())), at::Tensor()};
  }
};

}  // namespace

at::Tensor project(const at::Tensor& x, const at::Tensor& w) {
  if (x.scalar_type() == w.scalar_type()) return at::linear(x, w);
  return UpcastProject::apply(x, w);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(var + eps);
  return weight * h.to(x.scalar_type());
}

at::Tensor DecoderLayer::attention(const LlamaConfig& cfg, const at::Tensor& x,
                                   const at::Tensor& cos, const at::Tensor& sin,
                                   const at::Tensor& allowed, LayerCache cache, bool sdpa) const {
  const int64_t B = x.size(0), T = x.size(1), hd = cfg.head_dim;
  const int64_t nkv = cfg.kv_heads, rep = cfg.heads / cfg.kv_heads;
  at::Tensor qh = q.forward(x).view({B, T, cfg.heads, hd}).transpose(1, 2);  // [B, nh, T, hd]
  at::Tensor kh = k.forward(x).view({B, T, nkv, hd}).transpose(1, 2);        // [B, nkv, T, hd]
  at::Tensor vh = v.forward(x).view({B, T, nkv, hd}).transpose(1, 2);        // [B, nkv, T, hd]
  qh = Rope::apply(qh, cos, sin);
  kh = Rope::apply(kh, cos, sin);
  if (cache.k) {
    cache.k->narrow(2, cache.start, T).copy_(kh);
    cache.v->narrow(2, cache.start, T).copy_(vh);
    kh = cache.k->narrow(2, 0, cache.start + T);  // [B, nkv, S, hd]
    vh = cache.v->narrow(2, 0, cache.start + T);
  }
  if (sdpa) {
    // Flash / memory-efficient kernels: no [T, S] scores in memory. A plain causal mask is
    // passed as is_causal (the flash kernel takes no explicit mask); GQA: query head h reads
    // kv head h / rep (enable_gqa, HF's repeat_kv order).
    const std::optional<at::Tensor> mask =
        allowed.defined() ? std::optional<at::Tensor>(allowed) : std::nullopt;
    at::Tensor out = at::scaled_dot_product_attention(
        qh, kh, vh, mask, 0.0, /*is_causal=*/!allowed.defined(), std::nullopt,
        /*enable_gqa=*/rep > 1);                                         // [B, nh, T, hd]
    return o.forward(out.transpose(1, 2).reshape({B, T, cfg.heads * hd}));
  }
  ABM_CHECK(allowed.defined(), "the materialized attention needs its mask");
  const int64_t S = kh.size(2);
  // GQA without copying K/V: query head h uses kv head h / rep (HF repeat_kv order).
  at::Tensor qg = qh.reshape({B, nkv, rep * T, hd});                   // [B, nkv, rep*T, hd]
  at::Tensor scores = at::matmul(qg, kh.transpose(2, 3)) / std::sqrt(double(hd));
  scores = scores.view({B, nkv, rep, T, S}).to(at::kFloat);            // softmax in fp32
  at::Tensor mask = allowed.view({B, 1, 1, T, S});
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1).to(x.scalar_type()).view({B, nkv, rep * T, S});
  at::Tensor out = at::matmul(probs, vh);                               // [B, nkv, rep*T, hd]
  out = out.view({B, cfg.heads, T, hd}).transpose(1, 2).reshape({B, T, cfg.heads * hd});
  return o.forward(out);
}

at::Tensor DecoderLayer::mlp(const at::Tensor& x) const {
  return down.forward(at::silu(gate.forward(x)) * up.forward(x));
}

at::Tensor DecoderLayer::forward(const LlamaConfig& cfg, const at::Tensor& x,
                                 const at::Tensor& cos, const at::Tensor& sin,
                                 const at::Tensor& allowed, LayerCache cache, bool sdpa) const {
  at::Tensor h = x + attention(cfg, rms_norm(x, input_norm, cfg.rms_eps), cos, sin, allowed,
                               cache, sdpa);
  return h + mlp(rms_norm(h, post_norm, cfg.rms_eps));
}

}  // namespace abm
