// FLOP accounting and the measured matmul peak, so MFU is always "achieved / measured on
// this machine in this run" (docs/performance.md), never against a datasheet number.
#pragma once
#include <torch/torch.h>

#include "model/llama_config.h"

namespace abm {

// Best-of-`reps` GFLOP/s of an n x n x n matmul in `dtype` with the current thread count,
// on `device` (a GPU measures at n >= 8192, where its matrix units run at their peak, and
// is synchronized around each timed product).
double matmul_peak_gflops(int64_t n, at::ScalarType dtype, int reps = 3,
                          at::Device device = at::kCPU);

// Parameters that take part in matmuls per token (decoder projections + head).
double matmul_params(const LlamaConfig& c);

// FLOPs per token at (padded) context T: 2N + causal attention (QK^T, PV) for a forward;
// training adds the backward: 4N for LoRA (no frozen weight grads), 6N for full training,
// and twice the forward attention in either case.
double forward_flops_per_token(const LlamaConfig& c, int64_t T);
double train_flops_per_token(const LlamaConfig& c, int64_t T, bool full);

}  // namespace abm
