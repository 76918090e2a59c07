// The data-parallel trainer (DESIGN §2 phase 5): every rank holds the full frozen model and
// the full trainable set; each optimizer step runs this rank's micro-batches of the global
// batch, then ONE all-reduce of the flattened gradients, global-norm clipping and AdamW.
// The loss is the token-weighted mean over the whole global batch (losses are summed and
// divided by the all-reduced target count), so 1 rank and N ranks follow one trajectory.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "lora/adapter_set.h"
#include "train/adamw.h"
#include "train/backprop.h"
#include "train/evaluate.h"
#include "train/grad_buffer.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/train_config.h"

namespace abm {

struct StepResult {
  double loss = 0, lr = 0, grad_norm = 0, seconds = 0;
  int64_t targets = 0;    // trained targets in the global batch
  int64_t positions = 0;  // processed positions (rows x padded length) in the global batch
};

class Trainer {
 public:
  // adapters == nullptr: full-parameter mode (the model's own weights are trained).
  Trainer(const TrainConfig& cfg, LlamaModel& model, AdapterSet* adapters,
          const DataSplits& data, Communicator& comm);

  StepResult train_step();  // one optimizer step at step()
  EvalResult evaluate(const Dataset& d);  // adapters in eval mode (no dropout)
  void run();               // steps until total_steps(), with eval, metrics, progress

  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  AdamW& optimizer() { return *opt_; }
  const LrSchedule& schedule() const { return sched_; }
  double peak_gflops() const { return peak_gflops_; }  // matmul peak measured at construction
  Backprop* backprop() { return backprop_.get(); }     // null with --backprop autograd
  // Throws if the trainable parameters differ between ranks (bitwise).
  void check_replicas();
  // Called by run() after each step (all ranks) with the step's metrics record, to add
  // fields (e.g. the information loss from src/abm) before it is written.
  std::function<void(int64_t step, nlohmann::json& record)> on_step;

 private:
  const TrainConfig& cfg_;
  LlamaModel& model_;
  AdapterSet* adapters_;
  const DataSplits& data_;
  Communicator& comm_;
  Sampler sampler_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<AdamW> opt_;
  std::unique_ptr<GradBuffer> grads_;
  std::unique_ptr<Backprop> backprop_;  // null: LibTorch autograd through the model
  LrSchedule sched_;
  int64_t step_ = 0, total_ = 0;
  double peak_gflops_ = 0;
  MetricsLog metrics_;
};

}  // namespace abm
