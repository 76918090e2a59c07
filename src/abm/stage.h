// A pipeline stage of ABM (abm_pipeline.h): what one rank knows about its stage and the
// micro-batch entry point shared by the stage's passes (stage_passes.h) and its
// optimization (stage_optimize.h).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "abm/representative.h"
#include "comm/communicator.h"
#include "model/llama_model.h"
#include "sharding/partition_planner.h"
#include "sharding/stage_transport.h"

namespace abm {

// This rank's stage: its layer range as a view of the replica (sharing the weights and
// the attached adapters), its selected layers with their loss coefficients, its links.
// With R > 1 replicas per stage, replica q runs its own pipeline on its share of the
// samples, and `group` (the R ranks of stage k) sums their gradients and reports.
struct Stage {
  int k = 0, S = 1, q = 0, R = 1;
  Communicator* group = nullptr;
  std::vector<StagePlan> plan;
  LlamaModel view;
  std::vector<int64_t> layers;  // selected layers inside the stage, ascending
  std::vector<double> coef;     // their c_j / n (n = selected layers of the whole model)
  StageTransport* link = nullptr;
  bool first() const { return k == 0; }
  bool last() const { return k == S - 1; }
  // Micro-batch `chunk` of a report (or of the teacher pass's report) is replica q's.
  bool reports(int64_t chunk) const { return chunk % R == q; }
  int64_t begin() const { return plan[k].first_layer; }
  int64_t end() const { return plan[k].last_layer; }
};

// Micro-batch `id` of samples `which` enters the stage: embedded on the first stage, the
// previous stage's output ([b, T, hidden]) elsewhere.
inline at::Tensor stage_input(const Stage& st, const LlamaModel& view, const PaddedSamples& p,
                              int64_t id) {
  if (st.first()) return view.embed(p.ids);
  return st.link->recv_forward({p.ids.size(0), p.ids.size(1), view.config().hidden},
                               view.dtype(), id);
}

}  // namespace abm
