// LoRA-GA (Wang et al., arXiv 2407.05000): the adapter starts from the singular vectors of
// the full gradient G = dL/dW on a sampled batch, so its first step moves W the way full
// fine-tuning would (as far as rank r allows). The paper's default layout and scale
// ("ArB2r", "stable", γ = 16), with G = U S Vᵀ (fp32, thin SVD) and m = out:
//   A₀ = Vᵀ[0:r]     · m^¼ / √γ   [r, in]
//   B₀ = U[:, r:2r]  · m^¼ / √γ   [out, r]
//   base := W − s·B₀A₀            (the model is unchanged at step 0)
// The information loss of this start (abm/info_loss.h, on the same G) is exactly
// Σ_{i>2r} σᵢ² / ‖G‖² = 1 − Σ_{i≤2r} σᵢ²/‖G‖²: A's rows span G's top-r right singular
// vectors, B's columns the next r left ones.
// Single-threaded (core/one_thread.h): the same G gives the same bits on any rank.
#pragma once
#include <torch/torch.h>

#include "lora/init.h"

namespace abm {

inline constexpr double kLoraGaGamma = 16;  // the paper's stable_gamma

// Needs 2r <= min(out, in).
LoraWeights lora_ga_factors(const at::Tensor& G, int64_t r, double gamma = kLoraGaGamma);

}  // namespace abm
