// What a piece of the model costs: parameters (memory every step touches) and forward FLOPs
// per token at a sequence length (time). The planner balances a mix of both, because a
// stage must fit its weights in memory and finish its share of the pipeline in time.
#pragma once
#include <cstdint>

#include "model/llama_config.h"

namespace abm {

struct PieceCost {
  int64_t params = 0;  // weights this piece holds
  double flops = 0;    // forward FLOPs per token at the planned sequence length
};

struct ModelCosts {
  PieceCost embedding;  // lookup: parameters only, no FLOPs
  PieceCost layer;      // one decoder layer (all layers share one geometry)
  PieceCost head;       // final norm + lm_head
  int64_t layers = 0;
  int64_t total_params = 0;
  double total_flops = 0;

  // The mixed cost the planner balances: the mean of the piece's share of all parameters
  // and its share of all FLOPs, so the whole model costs 1.
  double cost(const PieceCost& p) const;
};

// Costs for `cfg` at sequence length `seq_len` (causal attention sees seq_len/2 keys per
// query on average, like train/flops.cpp).
ModelCosts model_costs(const LlamaConfig& cfg, int64_t seq_len);

}  // namespace abm
