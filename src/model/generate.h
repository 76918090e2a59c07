// Text generation with a KV cache: greedy (temperature 0) or sampled (temperature, top-k,
// top-p) from a seeded generator, so the same seed gives the same text.
#pragma once
#include <cstdint>
#include <vector>

#include "model/llama_model.h"

namespace abm {

struct SampleOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
  bool stop_at_eos = true;
};

// prompt: token ids (non-empty, usually starting with BOS). Returns only the new ids.
std::vector<int64_t> generate(const LlamaModel& model, const std::vector<int64_t>& prompt,
                              const SampleOptions& opts);

}  // namespace abm
