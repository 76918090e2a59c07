#include "abm/boundary_loss.h"

#include "core/check.h"

namespace abm {
namespace {

void check_shapes(const at::Tensor& z, const at::Tensor& on, const at::Tensor& real) {
  ABM_CHECK(z.dim() == 3 && on.sizes() == z.sizes() && on.scalar_type() == at::kBool,
            "teacher signs ", on.sizes(), " do not match the student's ", z.sizes());
  ABM_CHECK(real.dim() == 2 && real.size(0) == z.size(0) && real.size(1) == z.size(1) &&
                real.scalar_type() == at::kBool,
            "padding mask ", real.sizes(), " does not match ", z.sizes());
}

// h = max(0, m - tau z) at real tokens, 0 at padding: [B, T, I] fp32 (clamp_min, not relu,
// which has no meta kernel in LibTorch's C++ build: tests/device_test.cpp). Padding rows are
// multiplied by 0 (not indexed away) so shapes stay static.
at::Tensor hinge(const at::Tensor& z, const at::Tensor& on, const at::Tensor& real, double m) {
  at::Tensor tau = on.to(at::kFloat) * 2 - 1;  // [B, T, I] +-1
  return at::clamp_min(m - tau * z.to(at::kFloat), 0) * real.unsqueeze(-1).to(at::kFloat);
}

// S = sum h^2 as one autograd node that keeps only its inputs (z is kept by the MLP's
// backward anyway; the signs are one byte per unit) and recomputes h in backward:
// dS/dz = -2 tau h. Unfused, autograd would keep tau, h and h^2 — three fp32 copies of
// every selected layer's gate output, ~0.3 GB for 16 LLaMA-7B layers at 128 tokens.
struct BoundaryLossSum : torch::autograd::Function<BoundaryLossSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& z,
                            const at::Tensor& on, const at::Tensor& real, double margin) {
    ctx->save_for_backward({z, on, real});
    ctx->saved_data["margin"] = margin;
    at::Tensor h = hinge(z, on, real, margin);
    return (h * h).sum();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &z = saved[0], &on = saved[1], &real = saved[2];
    at::Tensor h = hinge(z, on, real, ctx->saved_data["margin"].toDouble());
    at::Tensor tau = on.to(at::kFloat) * 2 - 1;
    at::Tensor dz = (h * tau) * (-2.0 * g[0]);  // [B, T, I]
    return {dz.to(z.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor boundary_loss_sum(const at::Tensor& z, const at::Tensor& on, const at::Tensor& real,
                             double margin) {
  check_shapes(z, on, real);
  // The padding mask comes from the CPU (pad_samples); the signs live where they were taken.
  return BoundaryLossSum::apply(z, on.to(z.device()), real.to(z.device()), margin);
}

BoundaryCounts boundary_counts(const at::Tensor& z, const at::Tensor& on, const at::Tensor& real,
                               double margin) {
  check_shapes(z, on, real);
  at::NoGradGuard ng;
  at::Tensor zf = z.to(at::kFloat);
  at::Tensor o = on.to(z.device());
  at::Tensor r = real.to(z.device()).unsqueeze(-1).expand_as(o);     // [B, T, I]
  at::Tensor tau = o.to(at::kFloat) * 2 - 1;
  // One host read for the three counts.
  at::Tensor n = at::stack({r.sum(), ((zf > 0).eq(o) & r).sum(), ((tau * zf < margin) & r).sum()}).cpu();
  BoundaryCounts c;
  c.units = n[0].item<int64_t>();
  c.agree = n[1].item<int64_t>();
  c.violations = n[2].item<int64_t>();
  return c;
}

}  // namespace abm
