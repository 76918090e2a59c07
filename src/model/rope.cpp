#include "model/rope.h"

#include "core/device.h"

namespace abm {

Rope::Rope(const LlamaConfig& cfg) : factor_(cfg.rope_linear_factor) {
  // Same op order as HF: theta ** (arange(0, d, 2).float() / d), then reciprocal.
  at::Tensor exps = at::arange(0, cfg.head_dim, 2, at::kLong).to(at::kFloat) /
                    static_cast<double>(cfg.head_dim);
  inv_freq_ = 1.0 / at::pow(cfg.rope_theta, exps);
}

std::pair<at::Tensor, at::Tensor> Rope::tables(const at::Tensor& positions,
                                               at::ScalarType dtype) const {
  at::Tensor t = positions.to(at::kFloat);  // [B, T]
  if (factor_ != 1.0) t = t / factor_;
  at::Tensor freqs = t.unsqueeze(-1) * to_device(inv_freq_, t.device());  // [B, T, d/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);       // [B, 1, T, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);  // rotate_half
  return x * cos + rotated * sin;
}

}  // namespace abm
