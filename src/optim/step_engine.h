// StepEngine: the one optimizer step every objective shares (docs/performance.md). The trainer's LM
// loss, one-stage ABM's boundary loss and the pipelined boundary loss each plug in only
// what one micro-batch computes; the engine owns the rest of the step:
// - slicing the step's `batch` global sample numbers into this rank's micro-batches
//   (data/sampler.h: rank r of the group takes a contiguous block, `accumulation()`
//   micro-batches of `micro`);
// - the dropout streams, reseeded per micro-batch from (seed, its first global sample
//   number, tag), so any world size draws the same masks;
// - the totals (loss, count, ...) summed over the group in one all-reduce;
// - one flat gradient all-reduce over the given Communicator (the world, or a stage's
//   replica group), clipping, AdamW and the LR schedule.
// A non-finite loss or gradient norm stops the run (every rank sees the same all-reduced
// figures, so every rank stops), so no state is written from it. On a device the step
// reads the host once, at its end (the totals and the gradient norm together).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "data/sampler.h"
#include "lora/adapter_set.h"
#include "optim/adamw.h"
#include "optim/grad_buffer.h"
#include "optim/lr_schedule.h"

namespace abm {

struct StepEngineOptions {
  int64_t batch = 1;   // samples per optimizer step over the whole group
  int64_t micro = 1;   // samples per forward/backward
  uint64_t seed = 0;   // of the dropout streams
  std::string dropout_tag = "step";  // separates the streams of different objectives
  // true (LM loss): the loss and the gradient are divided by the group's total count;
  // false: the objective is normalized already (its denominator is known in advance).
  bool mean_over_count = true;
  double clip = 0;     // global gradient-norm clip (0: none; the norm is still reported)
  AdamWOptions adamw;
  LrSchedule schedule;
};

// One of this rank's micro-batches: its global sample numbers and the seed its dropout
// streams were reseeded with (an objective that reruns a forward reseeds with it again).
struct MicroBatch {
  SampleRange samples;
  uint64_t dropout_seed = 0;
};

// What one micro-batch contributed, after its backward added to the parameters' .grad().
struct MicroResult {
  double loss = 0;        // its loss (a sum for mean_over_count, else its normalized part)
  at::Tensor device_loss; // or that loss as a [] tensor on the device, read with the step's
                          // totals (no host round trip per micro-batch); undefined: `loss`
  int64_t count = 0;      // what the loss is summed over (trained tokens)
  int64_t positions = 0;  // rows x padded length processed
  int64_t hash = 0;       // an exact-in-double tag of which samples it held (< 2^32 each)
};

// The step, summed over the group.
struct StepTotals {
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t count = 0, positions = 0, hash = 0;
};

class StepEngine {
 public:
  // params: fp32 leaves, updated in place. dropout: whose streams are reseeded per
  // micro-batch and switched to train mode (null: none, e.g. full-parameter training).
  StepEngine(std::vector<at::Tensor> params, StepEngineOptions o, Communicator& group,
             AdapterSet* dropout);

  using Objective = std::function<MicroResult(const MicroBatch& mb)>;
  // Optimizer step s: the objective runs once per micro-batch of this rank.
  StepTotals step(int64_t s, const Objective& objective);

  int64_t accumulation() const;  // micro-batches per rank per step
  void release_grads();          // drops the parameters' .grad() tensors
  const std::vector<at::Tensor>& params() const { return params_; }
  AdamW& optimizer() { return opt_; }
  const AdamW& optimizer() const { return opt_; }
  const LrSchedule& schedule() const { return o_.schedule; }
  void set_schedule(const LrSchedule& s) { o_.schedule = s; }  // a checkpoint's
  Communicator& group() { return group_; }

 private:
  void read_totals(int64_t s, const at::Tensor& totals, StepTotals& t) const;
  void check_norm(int64_t s, double norm, StepTotals& t) const;
  std::vector<at::Tensor> params_;
  StepEngineOptions o_;
  Communicator& group_;
  AdapterSet* dropout_;
  AdamW opt_;
  GradBuffer grads_;
};

}  // namespace abm
