// One LLaMA decoder layer (HF LlamaDecoderLayer semantics): pre-norm attention with RoPE
// and GQA, pre-norm SwiGLU MLP, residuals. Frozen weights live in the compute dtype, or
// in a narrower storage dtype (bf16 weights computed in fp32: see project()).
#pragma once
#include <torch/torch.h>

#include <memory>

#include "model/llama_config.h"

namespace abm {

// Something that adds to a frozen projection's output — LoRA (src/lora) implements it.
// The model room only knows this interface, so dependencies point one way.
struct LinearAdapter {
  virtual ~LinearAdapter() = default;
  // x [..., in] (compute dtype), base = x W^T [..., out] -> the adapted output [..., out]
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& base) const = 0;
  // The state of its random stream (dropout), so a recomputed forward draws the same masks;
  // undefined when it draws none.
  virtual at::Tensor rng_state() const { return {}; }
  virtual void set_rng_state(const at::Tensor&) {}
};

// x [..., in] W^T -> [..., out] in x's dtype. A W stored in another dtype (bf16 weights,
// fp32 compute: on CPUs without AVX512-BF16 a bf16 matmul is ~15x slower than fp32) is
// cast for this product only, and autograd keeps W as stored, not its cast: memory stays
// at the stored size plus one projection's transient copy.
at::Tensor project(const at::Tensor& x, const at::Tensor& w);

// A frozen projection y = x W^T (+ adapter).
struct Linear {
  at::Tensor weight;                        // [out, in], frozen, compute or storage dtype
  std::shared_ptr<LinearAdapter> adapter;   // null = plain projection
  at::Tensor forward(const at::Tensor& x) const {
    at::Tensor y = project(x, weight);
    return adapter ? adapter->forward(x, y) : y;
  }
};

// RMSNorm in fp32, cast back, then scaled (HF LlamaRMSNorm).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

struct LayerCache {  // views into a KVCache slot
  at::Tensor* k = nullptr;  // [B, kv_heads, capacity, head_dim]
  at::Tensor* v = nullptr;
  int64_t start = 0;        // where this call's keys go
};

struct DecoderLayer {
  at::Tensor input_norm;  // [hidden]
  Linear q, k, v, o;      // q [heads*hd, hidden], k/v [kv*hd, hidden], o [hidden, heads*hd]
  at::Tensor post_norm;   // [hidden]
  Linear gate, up, down;  // gate/up [inter, hidden], down [hidden, inter]

  // x [B, T, hidden]; cos/sin [B, 1, T, hd]; allowed [B, 1, T, S] bool (S = keys incl.
  // cache; undefined = plain causal, no cache) -> [B, T, hidden]. sdpa: attention through
  // at::scaled_dot_product_attention instead of fp32 scores materialized here.
  at::Tensor forward(const LlamaConfig& cfg, const at::Tensor& x, const at::Tensor& cos,
                     const at::Tensor& sin, const at::Tensor& allowed, LayerCache cache,
                     bool sdpa = false) const;
  at::Tensor attention(const LlamaConfig& cfg, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin, const at::Tensor& allowed, LayerCache cache,
                       bool sdpa = false) const;
  at::Tensor mlp(const at::Tensor& x) const;
};

}  // namespace abm
