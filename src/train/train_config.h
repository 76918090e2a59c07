// TrainConfig: the one flat, validated config of `abmlora train` (and `pretrain`, which is
// train with --full). Declared once here so the CLI, checkpoints and tests agree.
#pragma once
#include <cstdint>
#include <string>

#include "core/options.h"
#include "data/dataset.h"
#include "lora/lora_config.h"

namespace abm {

inline constexpr int64_t kMaxGlobalBatch = int64_t(1) << 20;  // sequences per step
inline constexpr int64_t kMaxSteps = int64_t(1) << 30;
inline constexpr int64_t kMaxLength = int64_t(1) << 20;  // tokens per row

struct TrainConfig {
  // what
  std::string model, out = "runs/train", dtype = "auto";  // auto | fp32 | bf16
  std::string device = "auto";   // auto | cpu | cuda
  std::string init = "kaiming";  // kaiming | gaussian | adapter | abm
  std::string init_adapter;      // PEFT dir for --init adapter
  bool full = false;             // full-parameter training (no LoRA), for making base models
  // data
  std::string data, eval_data, tokenizer, format = "auto", tmpl = "auto", cache_dir;
  double eval_fraction = 0.0;
  int64_t max_length = 512;
  bool truncate = false, pack = false, train_on_inputs = false;
  // LoRA
  int64_t lora_r = 8;
  double lora_alpha = 16, lora_dropout = 0.0;
  std::string lora_targets = "q_proj,v_proj";
  bool rslora = false;
  // optimization
  int64_t global_batch = 8, micro_batch = 1, steps = 0, epochs = 0, warmup = 0;
  double lr = 2e-4, min_lr_ratio = 0.0, weight_decay = 0.0, clip = 1.0;
  std::string schedule = "cosine";
  uint64_t seed = 0;
  // execution
  bool recompute = false;          // activation recomputation (one layer's activations live)
  std::string backprop = "manual"; // manual (train/backprop.h) | autograd (LibTorch, reference)
  // monitoring
  int64_t eval_every = 0, log_every = 10, drift_check_every = 50;
  int64_t info_loss_every = 0;  // steps between information-loss probes (0 = off)
  int threads = 0;
  // checkpoints and stopping (docs/design.md §7): RUN/checkpoints, one at the end and on a stop
  int64_t checkpoint_every = 0;  // steps between checkpoints (0 = only at the end / on a stop)
  int64_t keep_checkpoints = 3;  // newest K kept (0 = all)
  std::string resume;            // "" = fresh | auto (RUN/checkpoints, fresh if none) | PATH
  double time_budget = 0;        // minutes of wall clock before stopping with a checkpoint

  std::string checkpoint_dir() const { return out + "/checkpoints"; }

  void declare(Options& o);  // binds every field to a --flag
  // Checks everything that needs no files; errors name the flag. data_ranks = world size.
  void validate(int data_ranks) const;
  LoraConfig lora() const;
  DataOptions data_options(int64_t vocab) const;
  // Steps of the run: --steps, or --epochs over `rows` training rows.
  int64_t total_steps(int64_t rows) const;
};

}  // namespace abm
