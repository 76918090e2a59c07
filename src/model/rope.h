// Rotary position embedding in Hugging Face's "rotate_half" layout (docs/design.md §8).
// cos/sin are computed in fp32 from the positions, then cast to the compute dtype,
// exactly like transformers' LlamaRotaryEmbedding (incl. "linear" rope_scaling).
#pragma once
#include <torch/torch.h>

#include "model/llama_config.h"

namespace abm {

class Rope {
 public:
  Rope() = default;
  explicit Rope(const LlamaConfig& cfg);
  // positions [B, T] int64 -> cos, sin [B, 1, T, head_dim] in `dtype`
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& positions, at::ScalarType dtype) const;
  // x [B, heads, T, head_dim]; cos/sin from tables()
  static at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

 private:
  at::Tensor inv_freq_;  // [head_dim / 2] fp32
  double factor_ = 1.0;
};

}  // namespace abm
