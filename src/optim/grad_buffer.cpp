#include "optim/grad_buffer.h"

namespace abm {

GradBuffer::GradBuffer(const std::vector<at::Tensor>& params) : params_(params) {
  int64_t total = 0;
  for (auto& p : params_) total += p.numel();
  flat_ = at::zeros({total}, at::kFloat);
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

void GradBuffer::all_reduce(Communicator* comm, double scale) {
  if (comm && comm->size() > 1) comm->all_reduce(flat_, ReduceOp::Sum);
  if (scale != 1.0) flat_.mul_(scale);
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

double GradBuffer::norm() const { return flat_.norm().item<double>(); }

double GradBuffer::clip(double max_norm) {
  double n = norm();
  if (max_norm > 0 && n > max_norm) flat_.mul_(max_norm / (n + 1e-6));
  return n;
}

}  // namespace abm
