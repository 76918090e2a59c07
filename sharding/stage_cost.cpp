#include "sharding/stage_cost.h"

#include "core/check.h"

namespace abm {

double ModelCosts::cost(const PieceCost& p) const {
  return 0.5 * double(p.params) / double(total_params) + 0.5 * p.flops / total_flops;
}

ModelCosts model_costs(const LlamaConfig& cfg, int64_t seq_len) {
  ABM_REQUIRE(seq_len >= 1, "stage planner: sequence length must be >= 1, got ", seq_len);
  ModelCosts m;
  m.layers = cfg.layers;
  const int64_t H = cfg.hidden;
  m.embedding.params = cfg.vocab * H;
  // A layer's matmul weights are its parameters minus the two RMSNorm vectors; QK^T and PV
  // cost 2 * 2 * q_dim per visible key, seq_len / 2 keys on average.
  m.layer.params = cfg.layer_params();
  m.layer.flops = 2.0 * double(cfg.layer_params() - 2 * H) + 2.0 * double(cfg.q_dim()) * seq_len;
  // Even a tied head holds the [vocab, hidden] matrix on the last stage: with more than one
  // stage the embedding's copy lives on stage 0.
  m.head.params = H + cfg.vocab * H;
  m.head.flops = 2.0 * double(cfg.vocab) * H;
  m.total_params = m.embedding.params + cfg.layers * m.layer.params + m.head.params;
  m.total_flops = m.embedding.flops + cfg.layers * m.layer.flops + m.head.flops;
  return m;
}

}  // namespace abm
