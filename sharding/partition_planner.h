// The partition planner: splits a model's decoder layers into S contiguous stages so the
// most expensive stage is as cheap as possible (docs/design.md §5 phase 1). The embedding rides
// with stage 0 and the final norm + head with stage S-1, because that is where
// LlamaModel::load puts them for a layer range.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "sharding/stage_cost.h"

namespace abm {

struct StagePlan {
  int stage = 0;
  int64_t first_layer = 0, last_layer = 0;  // [first_layer, last_layer)
  bool has_embedding = false, has_head = false;
  int64_t params = 0;  // weights the stage loads
  double flops = 0;    // forward FLOPs per token
  double cost = 0;     // share of the model's mixed cost (stage_cost.h); all stages sum to 1
};

// Exact min-max partition (dynamic programming over split points). Every stage gets at
// least one layer, so stages > layers is an error (abm::Error, one line).
std::vector<StagePlan> plan_stages(const LlamaConfig& cfg, int stages, int64_t seq_len);

// The same over explicit costs (tests use it to check optimality on hand-made inputs).
std::vector<StagePlan> plan_stages(const ModelCosts& costs, int stages);

// The plan as a fixed-width table, one line per stage plus a header and a balance line.
std::string plan_table(const std::vector<StagePlan>& plan);

}  // namespace abm
