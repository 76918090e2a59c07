#include "optim/grad_buffer.h"

namespace abm {

GradBuffer::GradBuffer(const std::vector<at::Tensor>& params) : params_(params) {
  int64_t total = 0;
  for (auto& p : params_) total += p.numel();
  const at::Device device = params_.empty() ? at::Device(at::kCPU) : params_[0].device();
  flat_ = at::zeros({total}, at::TensorOptions(at::kFloat).device(device));
  int64_t off = 0;
  for (auto& p : params_) {
    views_.push_back(flat_.narrow(0, off, p.numel()).view(p.sizes()));
    off += p.numel();
  }
}

// One copy kernel (a few on a GPU) when every parameter has its gradient, which is the
// rule; a parameter no loss reached gets zeros through the loop.
bool GradBuffer::all_grads(std::vector<at::Tensor>& grads) const {
  grads.clear();
  if (params_.empty()) return false;  // nothing to concatenate; the loops do nothing
  for (auto& p : params_) {
    if (!p.grad().defined()) return false;
    grads.push_back(p.grad());
  }
  return true;
}

void GradBuffer::gather() {
  std::vector<at::Tensor> grads;
  if (all_grads(grads)) {
    for (auto& g : grads) g = g.reshape({-1});
    at::cat_out(flat_, grads);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].grad().defined()) views_[i].copy_(params_[i].grad());
    else views_[i].zero_();
  }
}

void GradBuffer::all_reduce(Communicator* comm, const at::Tensor& scale) {
  if (comm && comm->size() > 1) comm->all_reduce(flat_, ReduceOp::Sum);
  // fp32 x a double 0-dim tensor computes in fp32 with the scale rounded once to fp32.
  if (scale.defined()) flat_.mul_(scale);
}

void GradBuffer::scatter() {
  std::vector<at::Tensor> grads;
  if (all_grads(grads)) {
    at::_foreach_copy_(grads, views_);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].grad().defined()) params_[i].mutable_grad().copy_(views_[i]);
    else params_[i].mutable_grad() = views_[i].clone();
  }
}

at::Tensor GradBuffer::clip(double max_norm) {
  at::Tensor n = flat_.norm().to(at::kDouble);  // the fp32 norm, exactly, as a double
  if (max_norm > 0) {
    // torch.nn.utils.clip_grad_norm_'s factor, min(1, max_norm / (n + 1e-6)), in double
    // (1 is a no-op multiply). clamp rather than where: it also runs on meta (tests).
    flat_.mul_((max_norm / (n + 1e-6)).clamp_max(1.0));
  }
  return n;
}

}  // namespace abm
