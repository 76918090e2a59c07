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

}  // namespace

at::Tensor boundary_loss_sum(const at::Tensor& z, const at::Tensor& on, const at::Tensor& real,
                             double margin) {
  check_shapes(z, on, real);
  at::Tensor tau = on.to(at::kFloat) * 2 - 1;                        // [B, T, I] +-1
  at::Tensor h = at::relu(margin - tau * z.to(at::kFloat));          // [B, T, I]
  // Padding rows are multiplied by 0 (not indexed away) so shapes stay static.
  return (h * h * real.unsqueeze(-1).to(at::kFloat)).sum();
}

BoundaryCounts boundary_counts(const at::Tensor& z, const at::Tensor& on, const at::Tensor& real,
                               double margin) {
  check_shapes(z, on, real);
  at::NoGradGuard ng;
  at::Tensor zf = z.to(at::kFloat);
  at::Tensor r = real.unsqueeze(-1).expand_as(on);                   // [B, T, I]
  at::Tensor tau = on.to(at::kFloat) * 2 - 1;
  BoundaryCounts c;
  c.units = r.sum().item<int64_t>();
  c.agree = ((zf > 0).eq(on) & r).sum().item<int64_t>();
  c.violations = ((tau * zf < margin) & r).sum().item<int64_t>();
  return c;
}

}  // namespace abm
