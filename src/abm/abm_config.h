// AbmConfig: the flags of the ABM initialization (docs/design.md §2), shared by `abmlora abm-init`
// and `abmlora train --init abm`. Defaults follow the official code unless measurement
// (README "ABM-LoRA") chose otherwise.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"

namespace abm {

struct AbmConfig {
  std::string layers = "last-half";  // last-half | all | last:N | comma list of layer indices
  double margin = 0.5;               // m in max(0, m - tau z)^2
  int64_t samples = 128;             // representative batch size (drawn by seed)
  int64_t steps = 100;               // AdamW steps
  double lr = 3e-4;
  double weight_decay = 0.01;
  int64_t batch = 1;                 // samples per ABM step (all ranks together)
  int64_t micro_batch = 1;           // samples per forward on one rank
  int64_t max_length = 512;          // representative samples are cut to this many tokens
  std::string teacher_adapter;       // PEFT dir; "" = the frozen base is the teacher
  // base = the frozen base (or --teacher-adapter) is the teacher; task = the official
  // protocol: train trains a LoRA on the task first (RUN/teacher) and uses it as teacher.
  std::string teacher = "base";
  int64_t teacher_steps = 0;         // steps of the task teacher; 0 = the student's --steps
  int stages = 0;                    // pipeline stages: 0 = one per rank; 1 = data parallel
  std::string scope = "global";      // shard | global (with stages > 1; see abm_pipeline.h)
  bool recompute = false;            // global scope: keep only layer inputs, recompute in backward
  uint64_t seed = 0;                 // draws the batch; set from --seed by the command
  int64_t log_every = 10;            // a progress line every N steps; from --log-every

  // Binds --abm-layers, --abm-margin, ... (not --seed: the command owns it).
  void declare(Options& o);
  // Checks what needs no model; errors name the flag. ranks = world size.
  void validate(int ranks) const;
  int resolved_stages(int ranks) const { return stages <= 0 ? ranks : stages; }
};

// The selected absolute layer indices (ascending, unique) of a model with n_layers
// layers; throws naming --abm-layers on a bad spec or an index out of range.
std::vector<int64_t> select_abm_layers(const std::string& spec, int64_t n_layers);

// c_j = ((j+1)/n)^2 for the j-th of n selected layers in depth order (deeper weighs more).
std::vector<double> abm_layer_weights(int64_t n);

}  // namespace abm
