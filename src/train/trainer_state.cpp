// The Trainer's side of checkpoints (docs/design.md §7): what a bitwise continuation needs, in and
// out of a CheckpointState, and the collective write. The HDF5 side is checkpoints/.
//
// Why this is enough for a bitwise continuation: the data order is a function of (seed,
// global sample number) and the sample number of step s is s * global_batch; dropout masks
// are reseeded per micro-batch from the global sample number (trainer.cpp); so the rest is
// the trainable tensors, AdamW's moments and step, the schedule, and the step. The torch
// CPU generator is saved too, for anything that draws from it.

#include "checkpoints/checkpoint_dir.h"
#include "core/log.h"
#include "core/test_hooks.h"
#include "core/timer.h"
#include "train/trainer.h"

namespace abm {
namespace {

constexpr const char* kTorchCpu = "torch_cpu";
// The default generator of the rank's GPU (rank-local: a checkpoint records rank 0's).
// A CPU run ignores it; a CUDA run without it (a CPU-written checkpoint) keeps its own.
constexpr const char* kTorchCuda = "torch_cuda";

std::string names_of(const NamedTensors& t, size_t i) {
  return i < t.size() ? t[i].first : "(none)";
}

}  // namespace

CheckpointState Trainer::state() const {
  CheckpointState s = identity_;
  s.step = step_;
  s.samples_seen = step_ * cfg_.global_batch;
  s.epoch = s.samples_seen / std::max<int64_t>(1, data_.train.size());
  s.tokens_seen = tokens_seen_;
  s.global_batch = cfg_.global_batch;
  s.world_size = comm_.size();
  s.lora.reset();
  if (adapters_) s.lora = adapters_->config();
  s.trainable = adapters_ ? adapters_->named_tensors() : model_.named_weights();
  const AdamW& opt = engine_->optimizer();
  const AdamWOptions& o = opt.options();
  s.optimizer.step = opt.steps();
  s.optimizer.beta1 = o.beta1;
  s.optimizer.beta2 = o.beta2;
  s.optimizer.eps = o.eps;
  s.optimizer.weight_decay = o.weight_decay;
  s.optimizer.exp_avg = opt.exp_avg();
  s.optimizer.exp_avg_sq = opt.exp_avg_sq();
  s.scheduler = engine_->schedule();
  s.sampler_seed = cfg_.seed;
  s.rng = {{kTorchCpu, at::detail::getDefaultCPUGenerator().get_state()}};
  if (model_.device().is_cuda())
    s.rng.push_back({kTorchCuda, at::globalContext().defaultGenerator(model_.device()).get_state()});
  return s;
}

void Trainer::restore(const CheckpointState& s) {
  const std::string origin = "checkpoint of step " + std::to_string(s.step);
  ABM_REQUIRE(s.step <= total_, origin, ": it is past the end of this run (--steps/--epochs give ",
              total_, " steps)");
  ABM_REQUIRE(s.global_batch == cfg_.global_batch && s.samples_seen == s.step * s.global_batch,
              origin, ": data position ", s.samples_seen, " is not step x global batch ",
              s.step, " x ", cfg_.global_batch);
  // Same tensors in the same (optimizer) order: the moments are matched by position.
  const NamedTensors mine = adapters_ ? adapters_->named_tensors() : model_.named_weights();
  for (size_t i = 0; i < std::max(mine.size(), s.trainable.size()); ++i)
    ABM_REQUIRE(names_of(mine, i) == names_of(s.trainable, i), origin, ": trainable tensor ", i,
                " is ", names_of(s.trainable, i), ", this run has ", names_of(mine, i));
  {
    at::NoGradGuard ng;
    for (size_t i = 0; i < mine.size(); ++i) {
      ABM_REQUIRE(mine[i].second.sizes() == s.trainable[i].second.sizes(), origin, ": ",
                  mine[i].first, " has shape ", s.trainable[i].second.sizes(), ", expected ",
                  mine[i].second.sizes());
      at::Tensor dst = mine[i].second;  // a handle to the live tensor: copy_ keeps its identity
      dst.copy_(s.trainable[i].second);
    }
  }
  engine_->optimizer().load_state(s.optimizer.step, s.optimizer.exp_avg, s.optimizer.exp_avg_sq);
  // The run's schedule is the checkpoint's: a requeued run follows the same curve even if
  // a flag that shapes it (--steps, --warmup, --lr) was changed in between.
  const LrSchedule& f = engine_->schedule();
  if (f.peak != s.scheduler.peak || f.warmup != s.scheduler.warmup || f.total != s.scheduler.total ||
      f.kind != s.scheduler.kind || f.min_ratio != s.scheduler.min_ratio)
    log0("resume: the learning-rate schedule of the checkpoint (", s.scheduler.kind, ", peak ",
         s.scheduler.peak, ", warmup ", s.scheduler.warmup, ", total ", s.scheduler.total,
         ") differs from the flags; continuing with the checkpoint's");
  engine_->set_schedule(s.scheduler);
  for (const auto& [name, t] : s.rng)
    if (name == kTorchCpu) {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(t);
    } else if (name == kTorchCuda && model_.device().is_cuda()) {
      at::Generator gen = at::globalContext().defaultGenerator(model_.device());
      gen.set_state(t);
    } else if (name == kTorchCuda) {
      log0("resume: ", origin, " holds a CUDA generator state; this run is on the CPU and ignores it");
    }
  step_ = s.step;
  tokens_seen_ = s.tokens_seen;
  resumed_at_ = s.step;
}

void Trainer::save_checkpoint() {
  Timer timer;
  std::string path;
  auto before_publish = [&] { test_hooks::before_publish(step_); };
  // Runtime::agree: every rank learns whether the write worked; a failed write stops all
  // with one message (the previous checkpoint is still the latest).
  Runtime::agree([&] {
    if (comm_.rank() == 0)
      path = write_checkpoint(cfg_.checkpoint_dir(), state(), cfg_.keep_checkpoints, before_publish);
  });
  budget_.record_checkpoint(timer.seconds());
  log0("checkpoint: ", path, " (step ", step_, ", ", int64_t(timer.seconds() * 1000), " ms)");
}

}  // namespace abm
