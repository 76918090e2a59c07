// ABM over pipeline stages (docs/design.md §5 phases 2-4): each of S = --abm-stages stages owns a
// contiguous layer range from the partition planner (sharding/partition_planner.h). On N
// ranks each stage has N/S replicas (sharding/stage_map.h): replica q's pipeline takes its
// share of every step's samples and of the reports, and a stage's replicas sum their
// gradients (an MPI sub-group), so the result does not depend on N/S.
//   1. rank 0's representative batch reaches every stage (MPI broadcast);
//   2. one pipelined teacher pass, micro-batch by micro-batch: stage k keeps the teacher
//      signs of its selected layers and the teacher hidden state at its input, and sends
//      its output on to stage k+1;
//   3. optimization of each stage's own LoRA parameters:
//      shard  — each stage alone, fed the teacher's hidden states at its input, against
//               its own selected layers: stages run in parallel, no backward traffic; a
//               stage without selected layers keeps its init;
//      global — the student forward is pipelined and dL/d(hidden) flows back stage to
//               stage, so every parameter gets the gradient of the whole loss: the result
//               equals the one-stage ABM (up to float summation order);
//   4. the adapters are gathered (broadcast from their owning stage) to every rank.
// The before/after reports always run the student end to end through the pipeline.
#pragma once
#include "abm/abm_init.h"
#include "sharding/partition_planner.h"

namespace abm {

// Collective over `comm` (MPI_COMM_WORLD), cfg.resolved_stages() > 1 stages. `model` and
// `student` hold either
//   - every layer (a full replica, as training needs): each stage works on a range view
//     of it, and after the call every rank's `student` holds all stages' results; or
//   - exactly this rank's stage of abm_stage_plan() (abm-init loads only that, so a rank
//     needs memory for its share of the model): each rank keeps its own stage's adapters,
//     and gather_named_tensors() (sharding/gather_named.h) collects them for the export.
AbmRun abm_initialize_staged(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                             const Dataset& train, Communicator& comm);

// ABM_LOG_MEMORY=1: this rank logs its current and peak RSS "after <phase>" (for the
// true-size memory measurement, launch/bench_7b_abm.sh); otherwise nothing.
void log_abm_memory(const char* phase);

// The stages abm_initialize_staged splits the model into.
std::vector<StagePlan> abm_stage_plan(const LlamaConfig& mc, int stages, const AbmConfig& cfg);

}  // namespace abm
