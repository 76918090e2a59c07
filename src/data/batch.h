// Collating rows of examples into the tensors one forward/backward consumes.
//
// Rows are right-padded to a common length T with pad id 0 and label kIgnore. A row that
// holds several examples (packing) gets positions restarting at 0 for each example and a
// block-diagonal causal mask, so no token attends across examples; its padding tail is a
// block of its own (a query row with nothing allowed would give NaN softmax).
// With example.h's label convention (labels[0] of every example is kIgnore), the shifted
// loss never scores one example's first token against the previous example's last, so a
// packed row's token_loss_sum equals that of its examples run one by one.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "data/dataset.h"
#include "data/example.h"

namespace abm {

struct Batch {
  at::Tensor ids;        // [B, T] int64, pad 0
  at::Tensor labels;     // [B, T] int64, kIgnore at padding and untrained tokens
  at::Tensor positions;  // [B, T] int64 RoPE positions
  at::Tensor allowed;    // [B, 1, T, T] bool, allowed[b,0,i,j]: query i sees key j;
                         // undefined when plain causal suffices (no row is packed)
  int64_t tokens = 0;    // predicted targets: count of labels[:, 1:] != kIgnore
  int64_t examples = 0;  // examples in the batch
  int64_t rows() const { return ids.defined() ? ids.size(0) : 0; }
};

struct CollateOptions {
  int64_t pad_id = 0;
  int64_t pad_to = 0;  // 0: the longest row; else a fixed T (static shapes), >= every row
};

Batch collate(const std::vector<std::vector<const Example*>>& rows, const CollateOptions& o = {});

// Rows `row_indices` of the dataset (what Sampler::global_index returns).
Batch make_batch(const Dataset& d, const std::vector<int64_t>& row_indices,
                 const CollateOptions& o = {});

}  // namespace abm
