#include "optim/adamw.h"

#include <cmath>

#include "core/check.h"

namespace abm {

AdamW::AdamW(std::vector<at::Tensor> params, AdamWOptions opts)
    : params_(std::move(params)), o_(opts) {
  reset();
}

void AdamW::reset() {
  m_.clear();
  v_.clear();
  for (auto& p : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
  step_ = 0;
}

void AdamW::load_state(int64_t steps, const std::vector<at::Tensor>& exp_avg,
                       const std::vector<at::Tensor>& exp_avg_sq) {
  ABM_REQUIRE(exp_avg.size() == m_.size() && exp_avg_sq.size() == v_.size(), "optimizer state: ",
              exp_avg.size(), " moment tensors for ", m_.size(), " parameters");
  at::NoGradGuard ng;
  for (size_t i = 0; i < m_.size(); ++i) {
    ABM_REQUIRE(exp_avg[i].sizes() == m_[i].sizes() && exp_avg_sq[i].sizes() == v_[i].sizes(),
                "optimizer state: moment ", i, " has shape ", exp_avg[i].sizes(), ", the parameter ",
                m_[i].sizes());
    m_[i].copy_(exp_avg[i]);
    v_[i].copy_(exp_avg_sq[i]);
  }
  step_ = steps;
}

void AdamW::step(double lr) {
  at::NoGradGuard ng;
  ++step_;
  const double bc1 = 1.0 - std::pow(o_.beta1, step_);
  const double bc2 = 1.0 - std::pow(o_.beta2, step_);
  std::vector<at::Tensor> p, g, m, v;  // the parameters that have a gradient
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    p.push_back(params_[i]);
    g.push_back(params_[i].grad());
    m.push_back(m_[i]);
    v.push_back(v_[i]);
  }
  if (p.empty()) return;
  // The _foreach ops do, per tensor, exactly these element-wise ops (on the CPU they are a
  // loop over them, so the numbers are the same); on a GPU each is a few multi-tensor
  // kernels instead of one launch per parameter (a 7B LoRA has 448 of them).
  if (o_.weight_decay != 0) at::_foreach_mul_(p, 1.0 - lr * o_.weight_decay);
  at::_foreach_mul_(m, o_.beta1);
  at::_foreach_add_(m, g, 1.0 - o_.beta1);
  at::_foreach_mul_(v, o_.beta2);
  at::_foreach_addcmul_(v, g, g, 1.0 - o_.beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, o_.eps);
  at::_foreach_addcdiv_(p, m, denom, -lr / bc1);
}

}  // namespace abm
