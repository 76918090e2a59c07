#include "optim/step_engine.h"

#include <cmath>

#include "core/check.h"
#include "core/device.h"
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
  at::Tensor device_loss;  // [] double: the micro-batches' device losses, summed in order
  for (const SampleRange& r : rank_slice(s, o_.batch, group_.rank(), group_.size(), o_.micro)) {
    // Masks depend only on (seed, global sample number), not on which rank runs them.
    MicroBatch mb{r, module_seed(o_.seed, std::to_string(r.begin), o_.dropout_tag)};
    if (dropout_) dropout_->reseed_dropout(mb.dropout_seed);
    MicroResult m = objective(mb);
    sum.loss += m.loss;
    if (m.device_loss.defined()) {
      // Each in double, as the host sum of their values would be: the same step loss.
      at::Tensor l = m.device_loss.detach().to(at::kDouble).reshape({});
      device_loss = device_loss.defined() ? device_loss + l : l;
    }
    sum.count += m.count;
    sum.positions += m.positions;
    sum.hash += m.hash;
  }
  // One all-reduce of the totals (on the parameters' device, so NCCL can carry them);
  // each is an integer below 2^53 or a double sum.
  const at::Device device = grads_.flat().device();
  at::Tensor totals = to_device(at::tensor(
      {sum.loss, double(sum.count), double(sum.positions), double(sum.hash)}, at::kDouble), device);
  if (device_loss.defined()) totals.narrow(0, 0, 1).add_(device_loss);
  group_.all_reduce(totals);
  at::Tensor scale;  // [] double: 1 / the group's count, on the device (no host read)
  if (o_.mean_over_count) scale = 1.0 / totals[1];
  // On the CPU the step's figures are read before the update, which a non-finite one
  // then never makes; on a device they are read once, after it (one host round trip per
  // step), and a non-finite one stops the run before anything is saved.
  const bool host = device.is_cpu();
  if (host) read_totals(s, totals, t);
  grads_.gather();
  grads_.all_reduce(&group_, scale);
  at::Tensor norm = grads_.clip(o_.clip);
  if (host) check_norm(s, norm.item<double>(), t);
  grads_.scatter();
  opt_.step(t.lr);
  if (!host) {
    at::Tensor all = at::cat({totals, norm.reshape({1})}).cpu();
    read_totals(s, all.narrow(0, 0, 4), t);
    check_norm(s, all[4].item<double>(), t);
  }
  return t;
}

// t.loss/count/positions/hash from the all-reduced totals [4] (CPU).
void StepEngine::read_totals(int64_t s, const at::Tensor& totals, StepTotals& t) const {
  const double* v = totals.data_ptr<double>();
  t.loss = v[0];
  t.count = static_cast<int64_t>(v[1]);
  t.positions = static_cast<int64_t>(v[2]);
  t.hash = static_cast<int64_t>(v[3]);
  if (o_.mean_over_count) {
    ABM_REQUIRE_COMMON(t.count > 0, "step ", s + 1, ": the batch has no trained tokens");
    t.loss /= double(t.count);
  }
  ABM_REQUIRE_COMMON(std::isfinite(t.loss), "step ", s + 1, ": the loss is ", t.loss,
              " (not finite); stopped, no checkpoint written from it");
}

void StepEngine::check_norm(int64_t s, double norm, StepTotals& t) const {
  t.grad_norm = norm;
  ABM_REQUIRE_COMMON(std::isfinite(norm), "step ", s + 1, ": the gradient norm is ", norm,
              " (not finite); stopped, no checkpoint written from it");
}

}  // namespace abm
