// ABM initialization of a whole-model replica (every rank holds all layers and the full
// adapter; the representative batch's steps are split over the ranks, data parallel):
// draw + broadcast the batch, capture the teacher (base, or base + --teacher-adapter),
// optimize every LoRA parameter against the boundary loss, report. The sharded variant
// (stages over layer ranges) builds on AbmTrainer directly.
#pragma once
#include <nlohmann/json.hpp>

#include "abm/abm_trainer.h"
#include "data/dataset.h"

namespace abm {

struct AbmRun {
  AbmResult result;
  std::vector<int64_t> indices;   // the representative batch's example indices
  int64_t samples = 0, tokens = 0;
};

// `student` is attached to `model` with its init (kaiming: B = 0). Logs a summary.
AbmRun abm_initialize(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                      const Dataset& train, Communicator& comm);

// Everything about the run for abm.json and the checkpoint's /abm group.
nlohmann::json abm_run_json(const AbmConfig& cfg, const AbmRun& run);

}  // namespace abm
