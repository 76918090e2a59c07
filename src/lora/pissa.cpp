#include "lora/pissa.h"

#include <cmath>

#include "core/check.h"
#include "core/one_thread.h"

namespace abm {

LoraWeights pissa_factors(const at::Tensor& W, int64_t r, double scale) {
  ABM_CHECK(W.dim() == 2 && r > 0 && r <= std::min(W.size(0), W.size(1)) && scale > 0,
            "pissa_factors: W ", W.sizes(), ", r ", r, ", scale ", scale);
  OneThread one;
  at::NoGradGuard ng;
  auto [U, S, Vh] = at::linalg_svd(W.to(at::kFloat), /*full_matrices=*/false);
  at::Tensor root = (S.narrow(0, 0, r) / scale).sqrt();               // [r]
  LoraWeights w;
  w.A = (root.unsqueeze(1) * Vh.narrow(0, 0, r)).contiguous();         // [r, in]
  w.B = (U.narrow(1, 0, r) * root.unsqueeze(0)).contiguous();          // [out, r]
  return w;
}

at::Tensor pissa_residual(const at::Tensor& W, const LoraWeights& w0, double scale) {
  OneThread one;
  at::NoGradGuard ng;
  at::Tensor top = at::mm(w0.B.to(W.device(), at::kFloat), w0.A.to(W.device(), at::kFloat));
  return (W.to(at::kFloat) - scale * top).to(W.scalar_type());
}

LoraWeights pissa_to_lora(const LoraWeights& trained, const LoraWeights& w0) {
  ABM_CHECK(trained.A.sizes() == w0.A.sizes() && trained.B.sizes() == w0.B.sizes(),
            "pissa_to_lora: shapes differ");
  LoraWeights w;
  w.A = at::cat({trained.A.to(at::kFloat), w0.A.to(trained.A.device(), at::kFloat)}, 0);
  w.B = at::cat({trained.B.to(at::kFloat), -w0.B.to(trained.B.device(), at::kFloat)}, 1);
  return w;
}

}  // namespace abm
