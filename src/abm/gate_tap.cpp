#include "abm/gate_tap.h"

#include "core/check.h"

namespace abm {

struct GateTaps::Recorder : LinearAdapter {
  std::shared_ptr<LinearAdapter> inner;  // the projection's own adapter (may be null)
  mutable at::Tensor last;               // [B, T, out]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base) const override {
    last = inner ? inner->forward(x, base) : base;
    return last;
  }
  at::Tensor rng_state() const override { return inner ? inner->rng_state() : at::Tensor(); }
  void set_rng_state(const at::Tensor& s) override {
    if (inner) inner->set_rng_state(s);
  }
};

GateTaps::GateTaps(LlamaModel& model, const std::vector<int64_t>& layers) : model_(model) {
  for (int64_t l : layers) {
    ABM_CHECK(l >= model.first() && l < model.last(), "layer ", l, " is outside the loaded range [",
              model.first(), ", ", model.last(), ")");
    Linear& g = model.layers()[l - model.first()].gate;
    auto r = std::make_shared<Recorder>();
    r->inner = g.adapter;
    g.adapter = r;
    local_.push_back(l - model.first());
    taps_.push_back(r);
  }
}

GateTaps::~GateTaps() {
  for (size_t i = 0; i < taps_.size(); ++i) model_.layers()[local_[i]].gate.adapter = taps_[i]->inner;
}

const at::Tensor& GateTaps::output(size_t i) const {
  ABM_CHECK(i < taps_.size() && taps_[i]->last.defined(), "gate tap ", i, " recorded nothing");
  return taps_[i]->last;
}

void GateTaps::clear() {
  for (auto& t : taps_) t->last = at::Tensor();
}

}  // namespace abm
