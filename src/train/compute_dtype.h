// --dtype auto|fp32|bf16: the compute dtype, chosen by measurement (docs/performance.md). CPUs differ:
// an Intel Xeon with AMX runs bf16 matmuls ~8x faster than fp32, an AMD EPYC with
// AVX512-BF16 ~2x, an AVX2-only one emulates bf16 ~17x slower. `auto` measures both on
// every rank at the model's own shapes and picks bf16 where it is at least 1.5x faster
// (below that, fp32's accuracy is worth more than the time); every rank uses the mean over
// ranks, so all pick the same. In bf16 compute the LoRA masters, gradients and AdamW
// moments stay fp32, and RMSNorm, softmax and the loss run in fp32.
#pragma once
#include <torch/torch.h>

#include <string>

#include "comm/communicator.h"
#include "model/llama_config.h"

namespace abm {

constexpr double kBf16MinSpeedup = 1.5;

struct DtypeChoice {
  at::ScalarType dtype = at::kFloat;
  double fp32_gflops = 0, bf16_gflops = 0;  // the measured throughputs (0: not measured)
  std::string why;                          // one line for the log
};

// bf16 when its throughput is at least kBf16MinSpeedup x fp32's.
at::ScalarType pick_faster_dtype(double fp32_gflops, double bf16_gflops);

// `flag` is the option's value ("auto", "fp32", "bf16"); `option` names it in errors. On a
// GPU auto is bf16 (every GPU this targets has bf16 matrix units). On the CPU auto measures [rows, hidden] x [hidden, intermediate] products (each side capped at 1024,
// so even a 7B geometry measures in milliseconds) with this rank's threads, averaged over
// `comm` (may be null). ABM_MATMUL_GFLOPS="fp32=A,bf16=B" replaces the measurement (tests).
DtypeChoice resolve_compute_dtype(const std::string& flag, const LlamaConfig& c,
                                  Communicator* comm, const std::string& option = "--dtype",
                                  at::Device device = at::kCPU);

const char* compute_dtype_name(at::ScalarType t);  // "fp32" | "bf16"

// For a command that loads the model in `model_dir`: resolve_compute_dtype on its
// config.json (call after the threads are set: auto measures with them), logged by rank 0
// as "COMMAND: compute dtype ...".
at::ScalarType command_dtype(const std::string& command, const std::string& flag,
                             const std::string& model_dir, Communicator* comm,
                             at::Device device = at::kCPU);

}  // namespace abm
