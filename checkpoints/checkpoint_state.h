// CheckpointState: everything a checkpoint holds (docs/design.md §7), as plain values, so the
// store knows nothing about the Trainer and the Trainer nothing about HDF5. What it holds
// is what a bitwise continuation needs: trainable tensors, AdamW moments and step, the LR
// schedule, RNG states, the data position, and the config/provenance that makes a resume
// refusable when it would continue a different run.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lora/lora_config.h"
#include "model/safetensors.h"  // NamedTensors
#include "optim/lr_schedule.h"

namespace abm {

constexpr const char* kCheckpointFormat = "abmlora-checkpoint";
constexpr int64_t kCheckpointVersion = 1;

// AdamW's state (train/adamw.h), one moment pair per trainable tensor, in the same order.
struct OptimizerState {
  int64_t step = 0;  // updates taken: drives bias correction
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;  // [per tensor] same shape, fp32
};

// How the ABM initialization was made (docs/design.md §2), so a resumed run never re-runs it and
// a report can say what the adapter started from.
struct AbmProvenance {
  uint64_t seed = 0;
  double margin = 0.5, lr = 3e-4, seconds = 0;
  int64_t steps = 0;
  std::string scope = "replicated";  // replicated (1 stage) | shard | global (AbmRun::scope)
  std::string teacher;           // "" = frozen base, else the teacher PEFT directory
  // --abm-teacher task: the teacher LoRA trained on the task first (0 / 0 / 0: none).
  int64_t teacher_steps = 0;
  double teacher_loss = 0, teacher_seconds = 0;  // its final train loss, its training time
  std::vector<int64_t> samples;  // [n] dataset rows of the representative batch
  std::vector<int64_t> layers;   // [L] selected layers in depth order
  std::vector<double> loss;      // [steps] boundary loss per ABM step
  std::vector<double> accuracy;  // [L] sign-matching accuracy per selected layer
};

struct CheckpointState {
  // progress
  int64_t step = 0;          // optimizer steps completed; the next step to run
  int64_t epoch = 0;         // epoch of the next sample
  int64_t samples_seen = 0;  // global samples consumed = sampler position
  int64_t tokens_seen = 0;   // trained target tokens so far
  int64_t global_batch = 0;  // sequences per step (elastic resume keeps it)
  int64_t world_size = 1;    // ranks of the run that wrote it (informational)

  // what run this is
  std::string config;            // resolved config, INI text as saved in RUN/config.ini
  std::string base_model;        // model directory as given (informational)
  std::string base_fingerprint;  // model_fingerprint() of it: must match on resume
  std::string data_fingerprint;  // Dataset::fingerprint() of the training rows: must match
                                 // on resume ("" in files written before it existed)
  std::optional<LoraConfig> lora;  // nullopt: full-parameter training

  // state
  NamedTensors trainable;  // "<module>.lora_A" [r,in] / ".lora_B" [out,r], optimizer order
  OptimizerState optimizer;
  LrSchedule scheduler;
  uint64_t sampler_seed = 0;
  NamedTensors rng;  // generator states as uint8 tensors ("torch_cpu", ...), may be empty
  std::optional<AbmProvenance> abm;

  // filled in by write_checkpoint / read_checkpoint
  int64_t format_version = kCheckpointVersion;
  std::string created;       // UTC, ISO 8601
  std::string tool_version;  // abmlora version that wrote it
};

// Bytes of the tensors (trainable + moments + rng): what a checkpoint's size is made of.
int64_t state_bytes(const CheckpointState& s);

}  // namespace abm
