// Causal multi-head attention for training: forward and backward, hand-written for CPUs.
//
// Why not the model's batched version: LibTorch's CPU bmm on [B*heads, T, head_dim] runs
// ~10x below the matmul peak here, and the [B, heads, T, T] score tensor makes every
// elementwise pass (scale, mask, softmax, cast) a trip through memory. Instead, work is
// split into (sequence, kv head) tasks run on task_pool.h's threads; each task runs its
// heads with single-threaded BLAS on [block, keys] score tiles that stay in cache, in
// query blocks that stop at the block's last key, so the causal upper triangle is never
// computed, and one fused pass (causal_softmax.h) masks and normalizes each tile. The
// backward reads the probabilities the forward kept, or recomputes each tile with the
// same ops (the same bits) when there was no room to keep them.
//
// Semantics are the model's (HF LlamaAttention): scores = (q k^T) / sqrt(head_dim) in the
// compute dtype, masked, softmax in fp32, probabilities cast to the compute dtype, times v;
// query head h reads kv head h / (heads / kv_heads). Masks must be causal (no query sees a
// later key): plain causal or batch.h's block-diagonal causal mask of packed rows.
#pragma once
#include <torch/torch.h>

namespace abm {

struct AttnDims {
  int64_t B = 0, T = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t block = 128;    // query rows per score tile
  bool q_scaled = false;  // q already carries the 1/sqrt(head_dim) (then tiles skip it)
};

// Floats of the probabilities attention_forward keeps per head: the lower tiles only.
int64_t attention_probs_per_head(const AttnDims& d);

// q [N = B*T, heads*hd], k, v [N, kv_heads*hd]: row-major views (last dim contiguous, any
// row stride, e.g. column slices of one qkv buffer), RoPE already applied to q and k.
// masked: [1 or B, T, T] bool, true where query i must not see key j; undefined = plain
// causal (then only the diagonal tiles are masked). out: [N, heads*hd] view, written.
// probs: optional [B*heads, attention_probs_per_head] fp32, receives the probabilities so
// the backward need not recompute them.
void attention_forward(const AttnDims& d, const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& masked, at::Tensor out,
                       at::Tensor probs = {});

// dout [N, heads*hd] -> dq [N, heads*hd] (written), dk, dv [N, kv_heads*hd] (zeroed, then
// accumulated over the heads that share them). probs: what attention_forward kept, or
// undefined (each tile's probabilities are recomputed with the forward's ops: same bits).
void attention_backward(const AttnDims& d, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& masked, const at::Tensor& dout,
                        at::Tensor dq, at::Tensor dk, at::Tensor dv,
                        const at::Tensor& probs = {});

}  // namespace abm
