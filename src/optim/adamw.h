// AdamW with torch.optim.AdamW's exact update order (decoupled weight decay first, then
// bias-corrected moments), over a fixed list of fp32 parameters. The state is exposed
// so checkpoints can save and restore it bit for bit.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace abm {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWOptions opts);
  // One update with learning rate lr; grads are read from params[i].grad().
  void step(double lr);
  void reset();  // zero moments and step count (after ABM, before fine-tuning)

  // Restores a saved state (checkpoints): copies into the existing moments, so their
  // identity and shapes stay; throws naming the tensor when a shape differs.
  void load_state(int64_t steps, const std::vector<at::Tensor>& exp_avg,
                  const std::vector<at::Tensor>& exp_avg_sq);

  const AdamWOptions& options() const { return o_; }
  int64_t steps() const { return step_; }
  std::vector<at::Tensor>& exp_avg() { return m_; }     // per param, same shape
  const std::vector<at::Tensor>& exp_avg() const { return m_; }
  const std::vector<at::Tensor>& exp_avg_sq() const { return v_; }
  std::vector<at::Tensor>& exp_avg_sq() { return v_; }  // per param, same shape

 private:
  std::vector<at::Tensor> params_, m_, v_;
  AdamWOptions o_;
  int64_t step_ = 0;
};

}  // namespace abm
