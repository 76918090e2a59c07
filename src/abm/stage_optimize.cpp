#include "abm/stage_optimize.h"

#include <algorithm>
#include <optional>

#include "abm/abm_trainer.h"
#include "abm/gate_tap.h"
#include "core/check.h"
#include "lora/init.h"
#include "optim/step_engine.h"
#include "train/metrics.h"

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
  trainer.set_progress_label(cat("abm: stage ", st.k + 1, "/", st.S, " "));
  std::vector<double> losses = trainer.optimize();  // already summed over the replicas
  if (st.q != 0) losses.assign(losses.size(), 0.0);
  return losses;
}

// Replica q takes its slice of each step's samples (the engine's group is the stage's R
// replicas, ranked by q); the stage's replicas sum gradients and losses.
std::vector<double> global_optimize(Stage& st, const AbmConfig& cfg, AdapterSet& student,
                                    const RepresentativeBatch& rb, const TeacherSigns& t) {
  StepEngine engine(student.parameters(st.begin(), st.end()), abm_step_options(cfg), *st.group,
                    &student);
  const int64_t N = rb.size(), units = st.view.config().intermediate;
  std::vector<double> losses;
  int64_t id = 0;  // micro-batch number: the transport's message tag
  // Rank 0 prints: its stage's part of the loss (the model's is summed at the end), or that
  // its stage has no selected layer (then the line still says the pipeline is moving).
  Progress progress(cfg.steps, cfg.log_every, 0, cat("abm: stage ", st.k + 1, "/", st.S, " "));
  for (int64_t s = 0; s < cfg.steps; ++s) {
    std::vector<int64_t> all = cycled_samples({s * cfg.batch, (s + 1) * cfg.batch}, N);
    const double denom = double(rb.tokens(all)) * double(units);
    // Without recomputation the whole stage is tapped; recomputed_step taps one layer at a
    // time (a stage-wide tap would keep every layer's graph alive again).
    std::optional<GateTaps> taps;
    if (!cfg.recompute) taps.emplace(st.view, st.layers);
    StepTotals tot = engine.step(s, [&](const MicroBatch& mb) {
      std::vector<int64_t> which = cycled_samples(mb.samples, N);
      PaddedSamples p = pad_samples(rb, which);
      MicroResult m;
      at::Tensor x = stage_input(st, st.view, p, id);  // [b, T, hidden]
      if (cfg.recompute) {
        at::Tensor g_in;
        m.loss = recomputed_step(st, cfg, student, t, p, which, mb.dropout_seed, denom, x, id, g_in);
        if (!st.first()) st.link->send_backward(g_in, id);
        ++id;
        return m;
      }
      if (!st.first()) x.requires_grad_(true);
      at::Tensor out = st.view.forward_layers(x);
      at::Tensor L = at::zeros({}, at::TensorOptions(at::kFloat).device(st.view.device()));
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
      m.loss = L.item<double>();
      ++id;
      return m;
    });
    // Summed over the replicas; replica 0 alone reports it (the caller sums over the world).
    losses.push_back(st.q == 0 ? tot.loss : 0.0);
    progress.update(s + 1, st.layers.empty() ? std::string("(no ABM layers in this stage)")
                                             : cat("loss of its layers ", tot.loss));
  }
  progress.finish();
  engine.release_grads();
  student.set_train(false);
  return losses;
}

}  // namespace abm
