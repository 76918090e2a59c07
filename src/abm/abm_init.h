// ABM initialization of a whole-model replica (every rank holds all layers and the full
// adapter; the representative batch's steps are split over the ranks, data parallel):
// draw + broadcast the batch, capture the teacher (base, or base + --teacher-adapter),
// optimize every LoRA parameter against the boundary loss, report. The sharded variant
// (stages over layer ranges) builds on AbmTrainer directly.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "abm/abm_trainer.h"
#include "data/dataset.h"

namespace abm {

struct AbmRun {
  AbmResult result;
  std::vector<int64_t> indices;   // the representative batch's example indices
  int64_t samples = 0, tokens = 0;
  int stages = 1;                 // pipeline stages it ran on (1 = replicated)
  std::string scope = "replicated";  // replicated (1 stage) | shard | global (cfg.scope)
};

// `student` is attached to `model` (every layer) with its init (kaiming: B = 0). With
// several stages (cfg.resolved_stages) it runs abm_initialize_staged (abm_pipeline.h),
// else every rank holds the whole model and the steps' samples are split over the ranks.
// Logs a summary.
AbmRun abm_initialize(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                      const Dataset& train, Communicator& comm);

// Runs fn with no adapter on `model`; what was attached (the student) is plugged back
// afterwards, also when fn attaches and detaches adapters of its own.
void with_student_detached(LlamaModel& model, const std::function<void()>& fn);

// Runs fn with the teacher adapter (PEFT dir) attached to `model` in place of whatever is
// attached now (the student), which is plugged back afterwards: the teacher adapter
// targets the same projections as the student.
void with_teacher_adapter(const std::string& dir, LlamaModel& model,
                          const std::function<void()>& fn);

// Everything about the run for abm.json and the checkpoint's /abm group.
nlohmann::json abm_run_json(const AbmConfig& cfg, const AbmRun& run);

}  // namespace abm
