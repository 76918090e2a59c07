// The forward-only passes of a pipeline stage (abm_pipeline.h): the pipelined teacher pass
// and the student's boundary report, micro-batch by micro-batch, each stage sending its
// output on to the next.
#pragma once
#include <vector>

#include "abm/abm_config.h"
#include "abm/abm_trainer.h"
#include "abm/stage.h"
#include "abm/teacher.h"
#include "lora/adapter_set.h"

namespace abm {

// [loss sum, then (units, agree, violations) per selected layer of the stage], zeros.
at::Tensor report_accumulator(const Stage& st);

// Every rank's accumulator, gathered to every rank, summed over the replicas of each stage
// and read in depth order, as one report.
BoundaryReport finish_report(const at::Tensor& acc, const Stage& st, const RepresentativeBatch& rb,
                             Communicator& comm);

// The pipelined teacher pass over `view` with whatever is attached and enabled: signs of
// the stage's selected layers for every sample, and (not on the first stage) the teacher
// hidden state entering the stage, [len, hidden] per sample, in `inputs`.
// With `report` (the student equals the teacher: B = 0 and the base is the teacher), also
// accumulates the student's "before" report from the same activations, sparing a pass.
TeacherSigns pipeline_teacher(const Stage& st, LlamaModel& view, const RepresentativeBatch& rb,
                              const AbmConfig& cfg, std::vector<at::Tensor>& inputs,
                              at::Tensor* report = nullptr);

// The student end to end through the pipeline, dropout off: the loss and the counts of
// every selected layer of the model, gathered to every rank in depth order.
BoundaryReport pipeline_report(Stage& st, AdapterSet& student, const AbmConfig& cfg,
                               const RepresentativeBatch& rb, const TeacherSigns& t,
                               Communicator& comm);

}  // namespace abm
