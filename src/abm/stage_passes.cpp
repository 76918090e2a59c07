#include "abm/stage_passes.h"

#include <algorithm>

#include "abm/gate_tap.h"
#include "core/progress.h"
#include "core/test_hooks.h"
#include "core/timer.h"

namespace abm {
namespace {

// Samples [0, n) in micro-batches of `micro`, in order.
std::vector<std::vector<int64_t>> chunks(int64_t n, int64_t micro) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t b = 0; b < n; b += micro) {
    out.emplace_back();
    for (int64_t k = b; k < std::min(n, b + micro); ++k) out.back().push_back(k);
  }
  return out;
}

// Adds micro-batch `which`'s boundary loss (weighted) and counts of the stage's selected
// layers, as recorded by `taps`, to acc = [loss sum, (units, agree, violations) per layer].
void add_report(at::Tensor& acc, const Stage& st, const GateTaps& taps, const TeacherSigns& t,
                const std::vector<int64_t>& which, const PaddedSamples& p, double margin) {
  std::vector<at::Tensor> on;
  for (size_t j = 0; j < st.layers.size(); ++j) on.push_back(padded_signs(t, j, which, p.ids.size(1)));
  add_to_report(acc, taps, on, p.real, st.coef, margin);
}

}  // namespace

at::Tensor report_accumulator(const Stage& st) {
  return at::zeros({1 + 3 * int64_t(st.layers.size())}, at::kDouble);
}

BoundaryReport finish_report(const at::Tensor& acc, const Stage& st, const RepresentativeBatch& rb,
                             Communicator& comm) {
  BoundaryReport rep;
  std::vector<at::Tensor> all = comm.all_gather_v(acc);  // rank q*S + k: stage k, replica q
  for (int k = 0; k < st.S; ++k) {
    at::Tensor a = all[k].clone();
    for (int q = 1; q < st.R; ++q) a += all[q * st.S + k];
    rep.loss += a[0].item<double>();
    for (int64_t j = 0; j < (a.numel() - 1) / 3; ++j) {
      BoundaryCounts c;
      c.units = static_cast<int64_t>(a[1 + 3 * j].item<double>());
      c.agree = static_cast<int64_t>(a[2 + 3 * j].item<double>());
      c.violations = static_cast<int64_t>(a[3 + 3 * j].item<double>());
      rep.layers.push_back(c);
    }
  }
  rep.loss /= double(rb.tokens()) * double(st.view.config().intermediate);
  return rep;
}

TeacherSigns pipeline_teacher(const Stage& st, LlamaModel& view, const RepresentativeBatch& rb,
                              const AbmConfig& cfg, std::vector<at::Tensor>& inputs,
                              at::Tensor* report) {
  Timer timer;
  at::NoGradGuard ng;
  TeacherSigns t;
  t.layers = st.layers;
  t.on.resize(rb.size());
  inputs.assign(rb.size(), at::Tensor());
  GateTaps taps(view, st.layers);
  int64_t id = 0;
  const auto all = chunks(rb.size(), cfg.micro_batch);
  Progress progress = Progress::pass(int64_t(all.size()), "abm: teacher pass ", "micro-batch");
  for (const auto& which : all) {
    PaddedSamples p = pad_samples(rb, which);
    at::Tensor x = stage_input(st, view, p, id);
    at::Tensor out = view.forward_layers(x);
    if (!st.last()) st.link->send_forward(out, id);
    for (size_t i = 0; i < which.size(); ++i) {
      const int64_t k = which[i], len = static_cast<int64_t>(rb.ids[k].size());
      if (!st.first()) inputs[k] = x[i].narrow(0, 0, len).clone();
      for (size_t j = 0; j < st.layers.size(); ++j)
        t.on[k].push_back(taps.output(j)[i].narrow(0, 0, len).gt(0).contiguous());
    }
    if (report && st.reports(id)) add_report(*report, st, taps, t, which, p, cfg.margin);
    taps.clear();
    ++id;
    test_hooks::after_teacher_batch(st.k);
    progress.update(id);
  }
  progress.finish();
  t.seconds = timer.seconds();
  return t;
}

BoundaryReport pipeline_report(Stage& st, AdapterSet& student, const AbmConfig& cfg,
                               const RepresentativeBatch& rb, const TeacherSigns& t,
                               Communicator& comm) {
  at::NoGradGuard ng;
  student.set_train(false);
  at::Tensor acc = report_accumulator(st);
  GateTaps taps(st.view, st.layers);
  std::vector<std::vector<int64_t>> all = chunks(rb.size(), cfg.micro_batch);
  Progress progress = Progress::pass(int64_t(all.size()), "abm: boundary report ", "micro-batch");
  for (int64_t id = 0; id < static_cast<int64_t>(all.size()); ++id) {
    if (!st.reports(id)) continue;
    PaddedSamples p = pad_samples(rb, all[id]);
    at::Tensor out = st.view.forward_layers(stage_input(st, st.view, p, id));
    if (!st.last()) st.link->send_forward(out, id);
    add_report(acc, st, taps, t, all[id], p, cfg.margin);
    taps.clear();
    progress.update(id + 1);
  }
  progress.finish();
  return finish_report(acc, st, rb, comm);
}

}  // namespace abm
