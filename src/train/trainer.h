// The data-parallel trainer (docs/design.md §5 phase 5): every rank holds the full frozen model and
// the full trainable set; each optimizer step runs this rank's micro-batches of the global
// batch, then ONE all-reduce of the flattened gradients, global-norm clipping and AdamW.
// The loss is the token-weighted mean over the whole global batch (losses are summed and
// divided by the all-reduced target count), so 1 rank and N ranks follow one trajectory.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "checkpoints/checkpoint_state.h"
#include "comm/communicator.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "lora/adapter_set.h"
#include "optim/step_engine.h"
#include "train/backprop.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/stop_signal.h"
#include "train/train_config.h"

namespace abm {

struct StepResult {
  double loss = 0, lr = 0, grad_norm = 0, seconds = 0;
  int64_t targets = 0;    // trained targets in the global batch
  int64_t positions = 0;  // processed positions (rows x padded length) in the global batch
  // Sum over the global batch of a hash of each (global sample number, dataset row) pair,
  // each below 2^32, so exact in the all-reduced doubles: equal on any world size iff the
  // batch holds the same rows in the same global order (resume tests compare it).
  int64_t batch_hash = 0;
};

// How run() ended.
struct RunEnd {
  bool finished = true;  // false: stopped early, checkpoint written (exit kExitRequeue)
  std::string reason;    // why it stopped: "SIGUSR1", "time budget (...)"
};

class Trainer {
 public:
  // adapters == nullptr: full-parameter mode (the model's own weights are trained).
  Trainer(const TrainConfig& cfg, LlamaModel& model, AdapterSet* adapters,
          const DataSplits& data, Communicator& comm);

  StepResult train_step();  // one optimizer step at step()
  EvalResult evaluate(const Dataset& d);  // adapters in eval mode (no dropout)
  // Steps until total_steps(), with eval, metrics, progress and checkpoints (every
  // --checkpoint-every steps and at the end, into OUT/checkpoints). After every step the
  // ranks agree whether to stop (signal or --time-budget); on a stop they write a
  // checkpoint and return finished = false.
  RunEnd run();

  // Checkpoints (trainer_state.cpp). What every checkpoint says about the run: resolved
  // config, base model and fingerprint, ABM provenance; state() adds the rest.
  void set_run_identity(CheckpointState identity) { identity_ = std::move(identity); }
  // The bitwise-continuation state: progress, trainable tensors (live, not copies), AdamW
  // moments and step, LR schedule, torch CPU generator state, data position.
  CheckpointState state() const;
  // Continues from s (every rank, same s: broadcast_state). Another world size is fine:
  // the global batch and thus the global data order are the checkpoint's.
  void restore(const CheckpointState& s);
  // Collective: all ranks are at the same step; rank 0 publishes the checkpoint, every
  // rank returns after it is durable (or every rank throws the write error).
  void save_checkpoint();
  // The wall-clock budget --time-budget counts down (default: from construction).
  void set_time_budget(const TimeBudget& b) { budget_ = b; }
  int64_t tokens_seen() const { return tokens_seen_; }

  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_; }
  const std::vector<at::Tensor>& params() const { return engine_->params(); }
  AdamW& optimizer() { return engine_->optimizer(); }
  const LrSchedule& schedule() const { return engine_->schedule(); }
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
  MicroResult lm_loss(const SampleRange& range);  // the objective the engine runs
  Communicator& comm_;
  Sampler sampler_;
  std::unique_ptr<Communicator> device_comm_;  // the gradients' group off the CPU
  std::unique_ptr<StepEngine> engine_;
  std::unique_ptr<Backprop> backprop_;  // null: LibTorch autograd through the model
  int64_t step_ = 0, total_ = 0;
  int64_t tokens_seen_ = 0;
  int nodes_ = 1;
  int64_t resumed_at_ = -1;  // checkpoint step continued from, -1 = fresh start
  double peak_gflops_ = 0;
  MetricsLog metrics_;
  CheckpointState identity_;
  TimeBudget budget_;
};

}  // namespace abm
