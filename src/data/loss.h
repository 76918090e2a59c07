// The token-level causal LM loss, as a sum, so the trainer can divide by the token count
// of the whole global batch (docs/design.md §5: 1 rank and N ranks follow the same trajectory).
#pragma once
#include <torch/torch.h>

namespace abm {

struct TokenLoss {
  at::Tensor sum;     // 0-dim fp32, differentiable: sum of cross-entropies over targets
  int64_t count = 0;  // number of targets
};

// logits [B, T, V] fp32 at position i predict token i + 1, so they are scored against
// labels[:, 1:] (HF's shift); labels == kIgnore (-100) are skipped. labels [B, T] int64.
TokenLoss token_loss_sum(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace abm
