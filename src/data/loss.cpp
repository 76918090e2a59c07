#include "data/loss.h"

#include "core/check.h"
#include "core/device.h"
#include "data/example.h"

namespace abm {

TokenLoss token_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  ABM_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                logits.size(1) == labels.size(1),
            "logits ", logits.sizes(), " vs labels ", labels.sizes());
  const int64_t B = labels.size(0), T = labels.size(1), V = logits.size(2);
  // Shift the labels rather than the logits: target of position i is labels[i + 1], and
  // the last position has none. Avoids copying the [B, T-1, V] logits slice.
  at::Tensor target = at::cat({labels.narrow(1, 1, T - 1), at::full({B, 1}, kIgnore, at::kLong)},
                              1);                                                  // [B, T]
  TokenLoss out;
  out.count = target.ne(kIgnore).sum().item<int64_t>();  // where the labels are: the CPU
  out.sum = at::cross_entropy_loss(logits.reshape({B * T, V}),
                                   to_device(target, logits.device()).reshape({B * T}), {},
                                   at::Reduction::Sum, kIgnore);
  return out;
}

}  // namespace abm
