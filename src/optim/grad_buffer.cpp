#include "optim/grad_buffer.h"

namespace abm {

GradBuffer::GradBuffer(const std::vector<at::Tensor>& params) : params_(params) {
  int64_t total = 0;
  for (auto& p : params_) total += p.numel();
  const at::Device device = params_.empty() ? at::Device(at::kCPU) : params_[0].device();
  flat_ = at::zeros({total}, at::TensorOptions(at::kFloat).device(device));
}

void GradBuffer::gather() {
  int64_t off = 0;
  for (auto& p : params_) {
    at::Tensor dst = flat_.narrow(0, off, p.numel());
    if (p.grad().defined()) dst.copy_(p.grad().reshape({-1}));
    else dst.zero_();
    off += p.numel();
  }
}

void GradBuffer::all_reduce(Communicator* comm, const at::Tensor& scale) {
  if (comm && comm->size() > 1) comm->all_reduce(flat_, ReduceOp::Sum);
  // fp32 x a double 0-dim tensor computes in fp32 with the scale rounded once to fp32.
  if (scale.defined()) flat_.mul_(scale);
}

void GradBuffer::scatter() {
  int64_t off = 0;
  for (auto& p : params_) {
    at::Tensor src = flat_.narrow(0, off, p.numel()).view(p.sizes());
    if (p.grad().defined()) p.mutable_grad().copy_(src);
    else p.mutable_grad() = src.clone();
    off += p.numel();
  }
}

at::Tensor GradBuffer::clip(double max_norm) {
  at::Tensor n = flat_.norm().to(at::kDouble);  // the fp32 norm, exactly, as a double
  if (max_norm > 0) {
    // max_norm / (n + 1e-6) in double where n > max_norm, else 1 (a no-op multiply).
    at::Tensor f = at::where(n > max_norm, max_norm / (n + 1e-6), at::ones_like(n));
    flat_.mul_(f);
  }
  return n;
}

}  // namespace abm
