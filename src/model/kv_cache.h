// Per-layer key/value cache for incremental decoding.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace abm {

struct KVCache {
  std::vector<at::Tensor> k, v;  // per loaded layer: [B, kv_heads, capacity, head_dim]
  int64_t length = 0;            // positions already filled
  int64_t capacity = 0;
};

}  // namespace abm
