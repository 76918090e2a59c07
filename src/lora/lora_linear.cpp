#include "lora/lora_linear.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/check.h"

namespace abm {

namespace {

// A generator of `device`'s kind seeded with `seed`: the CPU's own Mersenne twister, or a
// copy of the device's default (Philox on CUDA) reseeded, so masks are drawn where x is.
at::Generator seeded_generator(uint64_t seed, at::Device device) {
  if (!device.is_cuda()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Generator g = at::globalContext().defaultGenerator(device).clone();
  g.set_current_seed(seed);
  return g;
}

}  // namespace

LoraLinear::LoraLinear(const at::Tensor& A, const at::Tensor& B, double scale, double dropout,
                       uint64_t dropout_seed, at::Device device)
    : scale_(scale), dropout_(dropout), gen_(seeded_generator(dropout_seed, device)) {
  ABM_CHECK(A.dim() == 2 && B.dim() == 2 && B.size(1) == A.size(0), "LoRA A ", A.sizes(),
            " and B ", B.sizes(), " do not chain");
  ABM_CHECK(dropout >= 0.0 && dropout < 1.0, "dropout ", dropout);
  // clone: the adapter owns its parameters, never aliases a file buffer or a caller's tensor
  A_ = A.detach().to(device, at::kFloat).clone().requires_grad_(true);
  B_ = B.detach().to(device, at::kFloat).clone().requires_grad_(true);
}

at::Tensor LoraLinear::forward(const at::Tensor& x, const at::Tensor& base) const {
  if (!enabled_ || merged_) return base;
  const bool bf16 = base.scalar_type() == at::kBFloat16;
  at::Tensor h = x;  // [..., in]
  if (train_ && dropout_ > 0.0) {
    // nn.Dropout on x in fp32 (PEFT casts x to lora_A's dtype first): keep with
    // probability 1-p and rescale by 1/(1-p)
    h = x.to(at::kFloat);
    at::Tensor keep = at::empty_like(h).bernoulli_(1.0 - dropout_, gen_).div_(1.0 - dropout_);
    h = h * keep;
  }
  if (bf16) {
    // bf16 compute: the products in bf16, as torch.autocast runs PEFT's LoRA (fp32 masters:
    // the casts pass fp32 gradients back to A and B); the sum in bf16.
    at::Tensor delta = at::linear(at::linear(h.to(at::kBFloat16), A_.to(at::kBFloat16)),
                                  B_.to(at::kBFloat16)) * scale_;  // [..., out] bf16
    return base + delta;
  }
  at::Tensor delta = at::linear(at::linear(h.to(at::kFloat), A_), B_) * scale_;  // [..., out] fp32
  // PEFT: result += delta in the base dtype, i.e. added in fp32 and rounded once.
  return at::add(base, delta).to(base.scalar_type());
}

void LoraLinear::reseed_dropout(uint64_t seed) { gen_ = seeded_generator(seed, A_.device()); }

at::Tensor LoraLinear::dropout_state() const { return gen_.get_state(); }

void LoraLinear::set_dropout_state(const at::Tensor& state) { gen_.set_state(state); }

at::Tensor LoraLinear::delta_weight() const {
  at::NoGradGuard ng;
  return at::matmul(B_, A_) * scale_;
}

void LoraLinear::merge(at::Tensor& W) {
  ABM_CHECK(!merged_, "LoRA adapter is already merged");
  ABM_CHECK(W.dim() == 2 && W.size(0) == out() && W.size(1) == in(), "merge: weight ",
            W.sizes(), " vs adapter [", out(), ", ", in(), "]");
  at::NoGradGuard ng;
  W.copy_(W.to(at::kFloat) + delta_weight());
  merged_ = true;
}

void LoraLinear::unmerge(at::Tensor& W) {
  ABM_CHECK(merged_, "LoRA adapter is not merged");
  at::NoGradGuard ng;
  W.copy_(W.to(at::kFloat) - delta_weight());
  merged_ = false;
}

}  // namespace abm
