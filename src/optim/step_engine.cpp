#include "optim/step_engine.h"

#include <cmath>

#include "core/check.h"
#include "lora/init.h"

namespace abm {

StepEngine::StepEngine(std::vector<at::Tensor> params, StepEngineOptions o, Communicator& group,
                       AdapterSet* dropout)
    : params_(std::move(params)), o_(std::move(o)), group_(group), dropout_(dropout),
      opt_(params_, o_.adamw), grads_(params_) {}

int64_t StepEngine::accumulation() const {
  return o_.batch / (o_.micro * int64_t(group_.size()));
}

void StepEngine::release_grads() {
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
}

StepTotals StepEngine::step(int64_t s, const Objective& objective) {
  StepTotals t;
  t.lr = o_.schedule.at(s);
  release_grads();
  if (dropout_) dropout_->set_train(true);
  MicroResult sum;
  for (const SampleRange& r : rank_slice(s, o_.batch, group_.rank(), group_.size(), o_.micro)) {
    // Masks depend only on (seed, global sample number), not on which rank runs them.
    MicroBatch mb{r, module_seed(o_.seed, std::to_string(r.begin), o_.dropout_tag)};
    if (dropout_) dropout_->reseed_dropout(mb.dropout_seed);
    MicroResult m = objective(mb);
    sum.loss += m.loss;
    sum.count += m.count;
    sum.positions += m.positions;
    sum.hash += m.hash;
  }
  // One all-reduce of the totals; each is an integer below 2^53 or a double sum.
  at::Tensor totals = at::tensor(
      {sum.loss, double(sum.count), double(sum.positions), double(sum.hash)}, at::kDouble);
  group_.all_reduce(totals);
  const double* v = totals.data_ptr<double>();
  t.loss = v[0];
  t.count = static_cast<int64_t>(v[1]);
  t.positions = static_cast<int64_t>(v[2]);
  t.hash = static_cast<int64_t>(v[3]);
  double scale = 1.0;
  if (o_.mean_over_count) {
    ABM_REQUIRE(t.count > 0, "step ", s + 1, ": the batch has no trained tokens");
    t.loss /= double(t.count);
    scale = 1.0 / double(t.count);
  }
  ABM_REQUIRE(std::isfinite(t.loss), "step ", s + 1, ": the loss is ", t.loss,
              " (not finite); stopped before the update, no checkpoint written from it");
  grads_.gather();
  grads_.all_reduce(&group_, scale);
  t.grad_norm = grads_.clip(o_.clip);
  ABM_REQUIRE(std::isfinite(t.grad_norm), "step ", s + 1, ": the gradient norm is ", t.grad_norm,
              " (not finite); stopped before the update, no checkpoint written from it");
  grads_.scatter();
  opt_.step(t.lr);
  return t;
}

}  // namespace abm
