// The train-step benchmark behind `abmlora bench --what train` (issue 3's bench model by
// default): a randomly initialized LLaMA with LoRA (or full training) on random token ids,
// stepped by the real Trainer, timed step by step, with the matmul peak measured in the
// same run and the peak tensor memory of a step.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "comm/communicator.h"

namespace abm {

struct TrainBenchOptions {
  int64_t hidden = 512, layers = 8, heads = 8, kv_heads = 8, intermediate = 1376, vocab = 4096;
  int64_t seq = 256, micro = 8;  // per rank: global batch = micro x ranks, accumulation 1
  int64_t lora_r = 8;
  double lora_alpha = 16, lora_dropout = 0.0;
  std::string targets = "all-linear";
  std::string dtype = "fp32";  // auto | fp32 | bf16
  std::string device = "cpu";  // auto | cpu | cuda
  std::string backprop = "manual";
  bool recompute = false;
  bool full = false;   // full-parameter training instead of LoRA (fp32)
  int steps = 3;       // timed steps (the best and the median are reported)
  int warmup = 1;      // untimed steps first
  int peak_reps = 10;  // best-of repetitions of the 1024^3 matmul peak
  bool profile = false;  // time the parts of the step (manual backprop)
  int64_t attn_block = 0;  // attention tile rows (0 = Backprop's default)
};

struct TrainBenchResult {
  std::string dtype;               // the compute dtype used (auto resolved)
  double tokens_per_s = 0;         // global batch tokens / best step time (all ranks)
  double median_tokens_per_s = 0;
  double best_step_s = 0;
  double mfu = 0;                  // of the best step: model FLOPs (4N LoRA / 6N full +
                                   // attention; recomputation not counted) / peak
  double peak_gflops = 0;          // measured matmul peak of this rank in the dtype (MFU is
                                   // against the sum over ranks)
  double flops_per_token = 0;
  double step_tensor_mib = 0;      // max over steps of (peak live tensor bytes - bytes live
                                   // before the step), this rank
  double device_peak_mib = 0;      // peak device memory over the timed steps (GPU)
  double forward_s = 0;            // a no-grad forward of the step's batch (GPU breakdown)
  double loss = 0;                 // of the last step
  int64_t trainable = 0;           // trainable parameters
  double minor_faults = 0;         // page faults per timed step (fresh memory being touched)
  // --profile: seconds per timed step in each part of Backprop::run, plus "rest of the
  // step" (optimizer, gradient buffer, all-reduce, batch collation)
  std::map<std::string, double> profile;
};

TrainBenchResult bench_train(const TrainBenchOptions& o, Communicator& comm);

// --geometry llama2-7b: hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000,
// 2 x 2048 tokens per rank, LoRA r 16 on all linear layers (the GPU bench of docs/performance.md).
void set_llama2_7b_geometry(TrainBenchOptions& o);

}  // namespace abm
