// The ABM optimization of a pipeline stage (abm_pipeline.h), in either scope:
//   shard  — the stage alone, fed the teacher's hidden states at its input;
//   global — the student forward pipelined, dL/d(hidden) flowing back stage to stage.
// Both return this rank's part of each step's loss (the caller sums over all ranks).
#pragma once
#include <vector>

#include "abm/abm_config.h"
#include "abm/stage.h"
#include "abm/teacher.h"
#include "lora/adapter_set.h"

namespace abm {

// Shard scope: data parallel over the stage's replicas, against the stage's own selected
// layers. Returns the stage's loss per step on replica 0, zeros on the others; a stage
// without selected layers keeps its init.
std::vector<double> shard_optimize(Stage& st, const AbmConfig& cfg, AdapterSet& student,
                                   const RepresentativeBatch& rb, TeacherSigns t,
                                   const std::vector<at::Tensor>& inputs);

// Global scope: stage k's parameters get the gradient of its own layers' loss plus,
// through its output, that of every later stage; equals the one-stage ABM.
std::vector<double> global_optimize(Stage& st, const AbmConfig& cfg, AdapterSet& student,
                                    const RepresentativeBatch& rb, const TeacherSigns& t);

}  // namespace abm
