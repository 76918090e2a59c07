#include "lora/lora_ga.h"

#include <cmath>

#include "core/check.h"
#include "core/one_thread.h"

namespace abm {

LoraWeights lora_ga_factors(const at::Tensor& G, int64_t r, double gamma) {
  ABM_CHECK(G.dim() == 2 && r > 0 && 2 * r <= std::min(G.size(0), G.size(1)),
            "lora_ga_factors: G ", G.sizes(), ", r ", r);
  OneThread one;
  at::NoGradGuard ng;
  auto [U, S, Vh] = at::linalg_svd(G.to(at::kFloat), /*full_matrices=*/false);
  const double k = std::pow(double(G.size(0)), 0.25) / std::sqrt(gamma);
  LoraWeights w;
  w.A = (Vh.narrow(0, 0, r) * k).contiguous();  // [r, in]
  w.B = (U.narrow(1, r, r) * k).contiguous();   // [out, r]
  return w;
}

}  // namespace abm
