// The ABM optimization (docs/design.md §2): AdamW on every LoRA parameter of a model range against
// the boundary loss of the selected layers, fed by the representative batch. Works on any
// layer range given its input hidden states, so a sharded run (issue "sharding") calls it
// per stage; on one range it may also run data-parallel over `comm` (each ABM step's
// samples split over ranks, one gradient all-reduce per step — 1 rank == N ranks).
//
// Step s uses samples n mod N for n in [s*batch, (s+1)*batch) (cycling through the batch
// in drawn order); its loss is  L = sum_j coef_j * S_j / (tokens * units)  where S_j is
// layer j's hinge sum over the step's real tokens (boundary_loss.h) and coef_j = c_j / n.
#pragma once
#include <vector>

#include "abm/abm_config.h"
#include "abm/boundary_loss.h"
#include "abm/representative.h"
#include "abm/teacher.h"
#include "comm/communicator.h"
#include "lora/adapter_set.h"
#include "optim/step_engine.h"

namespace abm {

// Loss and sign statistics of the whole representative batch (dropout off).
struct BoundaryReport {
  double loss = 0;                          // L over all samples
  std::vector<BoundaryCounts> layers;       // per selected layer
};

// acc = [loss sum, then per layer: units, agree, violations]: adds one micro-batch's hinge
// sums (layer j weighted by coef[j]) and counts of the tapped layers against the teacher
// signs `on` ([layer] [b, T, I] bool), over the tokens where `real` [b, T] is true.
void add_to_report(at::Tensor& acc, const GateTaps& taps, const std::vector<at::Tensor>& on,
                   const at::Tensor& real, const std::vector<double>& coef, double margin);

// Collective: true when every LoRA B of layers [first, last) is zero on every rank of
// `comm` (kaiming/gaussian inits). The student then computes exactly the base (base + 0).
bool all_b_zero(const AdapterSet& student, int64_t first, int64_t last, Communicator& comm);

// The step engine's settings for ABM: AdamW at a constant lr, no clipping, the boundary
// loss already normalized, dropout streams tagged "abm-step".
StepEngineOptions abm_step_options(const AbmConfig& cfg);

struct AbmResult {
  std::vector<int64_t> layers;   // selected absolute layers of this range
  std::vector<double> coef;      // c_j / n
  std::vector<double> loss;      // [steps] training loss per step (dropout on)
  BoundaryReport before, after;  // at the init and after the last step
  double teacher_seconds = 0, seconds = 0;  // teacher pass; optimization incl. reports
  double step_seconds = 0;  // the optimization steps alone (seconds minus the two reports)
};

class AbmTrainer {
 public:
  // layers: the selected layers inside the model's range; coef: their c_j / n, where n
  // counts the selected layers of the whole model. The student adapters are attached.
  AbmTrainer(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
             const RepresentativeBatch& rb, std::vector<int64_t> layers,
             std::vector<double> coef, Communicator& comm,
             const std::vector<at::Tensor>* inputs = nullptr);

  // The samples this rank needs teacher signs for (its step slices and report shard).
  std::vector<int64_t> needed_samples() const;
  // Teacher = whatever is attached now with the student switched off (base teacher), or
  // call with a teacher already captured (teacher adapter; capture before attaching).
  // When every B of the range is 0 (kaiming/gaussian inits), the student computes exactly
  // the base, so the base teacher's pass also yields run()'s "before" report.
  void capture_base_teacher();
  void set_teacher(TeacherSigns t) { teacher_ = std::move(t); }

  BoundaryReport report();       // over the whole batch, sharded over ranks, dropout off
  // Progress lines name what the loss is: "abm: " (the model's) or a stage's (its part).
  void set_progress_label(std::string label) { progress_label_ = std::move(label); }
  std::vector<double> optimize();  // cfg.steps AdamW steps; the global loss of each
  AbmResult run();               // report, optimize, report
  // The LoRA parameters this trainer updates: those of the model's layer range.
  const std::vector<at::Tensor>& params() const { return params_; }

 private:
  std::string progress_label_ = "abm: ";
  const AbmConfig& cfg_;
  LlamaModel& model_;
  AdapterSet& student_;
  const RepresentativeBatch& rb_;
  std::vector<int64_t> layers_;
  std::vector<double> coef_;
  Communicator& comm_;
  const std::vector<at::Tensor>* inputs_;
  BoundaryReport finish(at::Tensor acc);  // sums acc over ranks
  // The objective: forward + backward of one micro-batch of step s.
  MicroResult micro_step(int64_t s, const SampleRange& r);

  TeacherSigns teacher_;
  at::Tensor before_;  // the "before" accumulator from the teacher pass, or undefined
  std::vector<at::Tensor> params_;
  int64_t units_ = 0;  // intermediate size
};

}  // namespace abm
