// The activation-boundary loss of ABM (docs/design.md §2) for one selected layer, as sums so that
// micro-batches and ranks can be accumulated exactly and divided by the global count once:
//   l_layer = S / (tokens * units),  S = sum over real tokens and units of max(0, m - tau z)^2
// with tau = +1 where the teacher's gate_proj output > 0, else -1 (exactly 0 is inactive).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace abm {

// z [B, T, I] student gate_proj output (any float dtype; summed in fp32);
// teacher_on [B, T, I] bool (teacher z > 0); real [B, T] bool (false at padding).
// -> 0-dim fp32, differentiable w.r.t. z: S above.
at::Tensor boundary_loss_sum(const at::Tensor& z, const at::Tensor& teacher_on,
                             const at::Tensor& real, double margin);

// Agreement counters over real tokens and units (no autograd).
struct BoundaryCounts {
  int64_t units = 0;       // real tokens x units
  int64_t agree = 0;       // 1[z > 0] == 1[teacher > 0]
  int64_t violations = 0;  // tau z < m: inside the margin or on the wrong side
  void add(const BoundaryCounts& o) { units += o.units; agree += o.agree; violations += o.violations; }
  double accuracy() const { return units ? double(agree) / double(units) : 0.0; }
  double violation_rate() const { return units ? double(violations) / double(units) : 0.0; }
};
BoundaryCounts boundary_counts(const at::Tensor& z, const at::Tensor& teacher_on,
                               const at::Tensor& real, double margin);

}  // namespace abm
