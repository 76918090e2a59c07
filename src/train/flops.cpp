#include "train/flops.h"

#include "core/timer.h"

namespace abm {

double matmul_peak_gflops(int64_t n, at::ScalarType dtype, int reps, at::Device device) {
  at::NoGradGuard ng;
  const bool gpu = device.is_cuda();
  if (gpu) n = std::max<int64_t>(n, 8192);
  auto sync = [&] {
    if (gpu) torch::cuda::synchronize(device.index());
  };
  at::Tensor a = at::randn({n, n}).to(device, dtype), b = at::randn({n, n}).to(device, dtype);
  at::mm(a, b);  // warm-up (oneDNN / cuBLAS set-up, page faults)
  sync();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    Timer t;
    at::mm(a, b);
    sync();
    best = std::min(best, t.seconds());
  }
  return 2.0 * n * n * n / best / 1e9;
}

double matmul_params(const LlamaConfig& c) {
  return double(c.layers) * (c.layer_params() - 2 * c.hidden) + double(c.vocab) * c.hidden;
}

double forward_flops_per_token(const LlamaConfig& c, int64_t T) {
  // QK^T and PV: 2 * 2 * q_dim FLOPs per visible key; causal sees T/2 keys on average.
  double attn = double(c.layers) * 2.0 * c.q_dim() * T;
  return 2.0 * matmul_params(c) + attn;
}

double train_flops_per_token(const LlamaConfig& c, int64_t T, bool full) {
  double attn = double(c.layers) * 2.0 * c.q_dim() * T;
  return (full ? 6.0 : 4.0) * matmul_params(c) + 3.0 * attn;
}

}  // namespace abm
