// PiSSA (Meng et al., arXiv 2404.02948): the adapter starts from the principal singular
// values and vectors of each frozen weight, and the frozen base becomes the residual.
//   W = U S Vᵀ (fp32, thin SVD), s = the LoRA scale, r the rank:
//   A₀ = diag(√(S_r / s)) V_rᵀ   [r, in]
//   B₀ = U_r diag(√(S_r / s))    [out, r]      so s·B₀A₀ = U_r S_r V_rᵀ (the top-r part)
//   base := W − s·B₀A₀                          (the model computes exactly W at step 0)
// This is PEFT's init_lora_weights="pissa" (the full SVD, not "pissa_niter_k").
//
// Determinism: both run on one intra-op thread, so a module's factors and residual are a
// function of its weight alone — the same bits on any rank and any world size, and a
// resume rebuilds the residual base bitwise from the original weights.
#pragma once
#include <torch/torch.h>

#include "lora/init.h"

namespace abm {

LoraWeights pissa_factors(const at::Tensor& W, int64_t r, double scale);
// W − scale·B₀A₀, computed in fp32 and returned in W's dtype and device.
at::Tensor pissa_residual(const at::Tensor& W, const LoraWeights& w0, double scale);

// What PEFT needs to apply a trained PiSSA adapter (A', B') to the ORIGINAL base, as
// PEFT's "pissa → lora" conversion does: ΔW = s(B'A' − B₀A₀), a rank-2r LoRA with
//   A = [A'; A₀]  [2r, in],   B = [B', −B₀]  [out, 2r],
// and the same scale s (the caller doubles r and sets alpha so that alpha/r' = s).
LoraWeights pissa_to_lora(const LoraWeights& trained, const LoraWeights& w0);

}  // namespace abm
