// ABM over pipeline stages (DESIGN §2 phases 2-4): every rank is one stage owning a
// contiguous layer range from the partition planner (sharding/partition_planner.h).
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

namespace abm {

// Collective over `comm`, one stage per rank (comm.size() > 1). `model` and `student`
// hold every layer (a full replica; each stage works on a range view of it), and after
// the call every rank's `student` holds all stages' results.
AbmRun abm_initialize_staged(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                             const Dataset& train, Communicator& comm);

}  // namespace abm
