// Shared by backprop.cpp (the step) and backprop_layer.cpp (one layer's math), nothing
// else: where parameter gradients go (the row slice's sink or .grad()) and the profiler's
// scope timer.
#pragma once
#include <torch/torch.h>

#include <utility>
#include <vector>

#include "core/timer.h"
#include "train/backprop.h"

namespace abm {
namespace backprop_detail {

// Where this thread's parameter gradients go while Backprop::run works on a row slice: one
// tensor per parameter, in the order first touched, added to .grad() after the slices.
struct GradSink {
  int index = 0;  // the slice's number
  std::vector<std::pair<at::Tensor, at::Tensor>> grads;  // (parameter, its gradient)
  at::Tensor& of(const at::Tensor& p) {
    for (auto& [param, g] : grads)
      if (param.is_same(p)) return g;
    grads.emplace_back(p, at::zeros_like(p));
    return grads.back().second;
  }
};
inline thread_local GradSink* t_sink = nullptr;

// Routes this thread's grad_of() to `sink` while alive.
struct UseSink {
  explicit UseSink(GradSink* sink) { t_sink = sink; }
  ~UseSink() { t_sink = nullptr; }
};

// The parameter's gradient (this row slice's, when on one), zero-initialized on first use.
inline at::Tensor& grad_of(const at::Tensor& p) {
  if (t_sink) return t_sink->of(p);
  at::Tensor& g = const_cast<at::Tensor&>(p).mutable_grad();
  if (!g.defined()) g = at::zeros_like(p);
  return g;
}

}  // namespace backprop_detail

// Adds the wall time of a scope to Backprop::profile()[name] when profiling is on (on row
// slices, slice 0's: they run side by side, so its wall time is the step's).
struct ProfSpan {
  ProfSpan(const Backprop* bp, const char* name) : bp_(const_cast<Backprop*>(bp)), name_(name) {}
  ~ProfSpan() {
    const backprop_detail::GradSink* sink = backprop_detail::t_sink;
    if (bp_->profiling_ && (!sink || sink->index == 0)) bp_->prof_[name_] += t_.seconds();
  }
  Backprop* bp_;
  const char* name_;
  Timer t_;
};

}  // namespace abm
