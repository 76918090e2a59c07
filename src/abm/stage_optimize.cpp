#include "abm/stage_optimize.h"

#include <algorithm>
#include <optional>

#include "abm/abm_trainer.h"
#include "abm/gate_tap.h"
#include "lora/init.h"
#include "train/adamw.h"
#include "train/grad_buffer.h"

namespace abm {
namespace {

// The stage's forward and backward for one micro-batch with per-layer recomputation: a
// no-grad forward keeps each layer's input; backward re-runs one layer at a time with
// grad (the same dropout masks: every module's stream is reseeded to the state it had in
// the forward, where each module draws once) and backpropagates its loss terms plus the
// gradient arriving from above. Returns the stage's loss; dL/d(stage input) in `g_in`.
double recomputed_step(Stage& st, const AbmConfig& cfg, AdapterSet& student, const TeacherSigns& t,
                       const PaddedSamples& p, const std::vector<int64_t>& which, uint64_t seed,
                       double denom, const at::Tensor& x, int64_t id, at::Tensor& g_in) {
  std::vector<at::Tensor> ins;  // [layers] input of each layer, [b, T, hidden]
  at::Tensor h = x.detach();
  {
    at::NoGradGuard ng;
    student.reseed_dropout(seed);
    for (int64_t i = st.begin(); i < st.end(); ++i) {
      ins.push_back(h);
      h = st.view.range(i, i + 1).forward_layers(h);
    }
  }
  at::Tensor g;  // dL/d(output of the current layer); undefined = no gradient from above
  if (!st.last()) {
    st.link->send_forward(h, id);
    g = st.link->recv_backward(h.sizes(), h.scalar_type(), id);
  }
  double loss = 0;
  for (int64_t i = st.end() - 1; i >= st.begin(); --i) {
    // Layer i's place among the stage's selected layers, if it is one.
    const size_t j = std::find(st.layers.begin(), st.layers.end(), i) - st.layers.begin();
    const bool selected = j < st.layers.size();
    at::Tensor xi = ins[i - st.begin()].detach().requires_grad_(true);
    LlamaModel layer = st.view.range(i, i + 1);
    student.reseed_dropout(seed);
    GateTaps taps(layer, selected ? std::vector<int64_t>{i} : std::vector<int64_t>{});
    at::Tensor y = layer.forward_layers(xi);
    std::vector<at::Tensor> roots, seeds;
    if (selected) {
      at::Tensor on = padded_signs(t, j, which, p.ids.size(1));
      at::Tensor L = boundary_loss_sum(taps.output(0), on, p.real, cfg.margin) * (st.coef[j] / denom);
      loss += L.item<double>();
      roots.push_back(L);
      seeds.push_back(at::ones_like(L));
    }
    if (g.defined()) {
      roots.push_back(y);
      seeds.push_back(g);
    }
    taps.clear();
    if (roots.empty()) continue;  // nothing above depends on this layer's output yet
    torch::autograd::backward(roots, seeds);
    g = xi.grad();
  }
  g_in = g.defined() ? g : at::zeros_like(x);
  return loss;
}

}  // namespace

std::vector<double> shard_optimize(Stage& st, const AbmConfig& cfg, AdapterSet& student,
                                   const RepresentativeBatch& rb, TeacherSigns t,
                                   const std::vector<at::Tensor>& inputs) {
  if (st.layers.empty()) return std::vector<double>(cfg.steps, 0.0);  // keeps its init
  AbmTrainer trainer(cfg, st.view, student, rb, st.layers, st.coef, *st.group,
                     st.first() ? nullptr : &inputs);
  trainer.set_teacher(std::move(t));
  std::vector<double> losses = trainer.optimize();  // already summed over the replicas
  if (st.q != 0) losses.assign(losses.size(), 0.0);
  return losses;
}

// Replica q takes its slice of each step's samples; the stage's replicas sum gradients.
std::vector<double> global_optimize(Stage& st, const AbmConfig& cfg, AdapterSet& student,
                                    const RepresentativeBatch& rb, const TeacherSigns& t) {
  std::vector<at::Tensor> params = student.parameters(st.begin(), st.end());
  AdamWOptions ao;
  ao.weight_decay = cfg.weight_decay;
  AdamW opt(params, ao);
  GradBuffer grads(params);
  const int64_t N = rb.size(), units = st.view.config().intermediate;
  std::vector<double> losses;
  int64_t id = 0;
  for (int64_t s = 0; s < cfg.steps; ++s) {
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    student.set_train(true);
    std::vector<int64_t> all = cycled_samples({s * cfg.batch, (s + 1) * cfg.batch}, N);
    const double denom = double(rb.tokens(all)) * double(units);
    double loss = 0;
    // Without recomputation the whole stage is tapped; recomputed_step taps one layer at a
    // time (a stage-wide tap would keep every layer's graph alive again).
    std::optional<GateTaps> taps;
    if (!cfg.recompute) taps.emplace(st.view, st.layers);
    for (const SampleRange& r : rank_slice(s, cfg.batch, st.q, st.R, cfg.micro_batch)) {
      std::vector<int64_t> which = cycled_samples(r, N);
      PaddedSamples p = pad_samples(rb, which);
      // The same dropout masks as the one-stage run: seeded per module and sample number.
      const uint64_t seed = module_seed(cfg.seed, std::to_string(r.begin), "abm-step");
      student.reseed_dropout(seed);
      at::Tensor x = stage_input(st, st.view, p, id);  // [b, T, hidden]
      if (cfg.recompute) {
        at::Tensor g_in;
        loss += recomputed_step(st, cfg, student, t, p, which, seed, denom, x, id, g_in);
        if (!st.first()) st.link->send_backward(g_in, id);
        ++id;
        continue;
      }
      if (!st.first()) x.requires_grad_(true);
      at::Tensor out = st.view.forward_layers(x);
      at::Tensor L = at::zeros({}, at::kFloat);
      for (size_t j = 0; j < st.layers.size(); ++j) {
        at::Tensor on = padded_signs(t, j, which, p.ids.size(1));
        L = L + boundary_loss_sum(taps->output(j), on, p.real, cfg.margin) * (st.coef[j] / denom);
      }
      taps->clear();
      std::vector<at::Tensor> roots, seeds;
      if (L.requires_grad()) {
        roots.push_back(L);
        seeds.push_back(at::ones_like(L));
      }
      if (!st.last()) {
        st.link->send_forward(out.detach(), id);
        at::Tensor g = st.link->recv_backward(out.sizes(), out.scalar_type(), id);
        if (out.requires_grad()) {
          roots.push_back(out);
          seeds.push_back(g);
        }
      }
      if (!roots.empty()) torch::autograd::backward(roots, seeds);
      if (!st.first()) st.link->send_backward(x.grad().defined() ? x.grad() : at::zeros_like(x), id);
      loss += L.item<double>();
      ++id;
    }
    grads.gather();  // undefined gradients become zeros, as in the one-stage trainer
    grads.all_reduce(st.group, 1.0);  // sum over the stage's replicas (none: a no-op)
    grads.scatter();
    opt.step(cfg.lr);
    losses.push_back(loss);
  }
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  student.set_train(false);
  return losses;
}

}  // namespace abm
