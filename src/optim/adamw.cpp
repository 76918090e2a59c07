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
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    p.mul_(1.0 - lr * o_.weight_decay);
    m_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    v_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    at::Tensor denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(o_.eps);
    p.addcdiv_(m_[i], denom, -lr / bc1);
  }
}

}  // namespace abm
