#include "abm/abm_trainer.h"

#include <set>
#include <utility>

#include "abm/gate_tap.h"
#include "core/check.h"
#include "core/timer.h"
#include "data/sampler.h"
#include "lora/init.h"
#include "train/metrics.h"

namespace abm {
AbmTrainer::AbmTrainer(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                       const RepresentativeBatch& rb, std::vector<int64_t> layers,
                       std::vector<double> coef, Communicator& comm,
                       const std::vector<at::Tensor>* inputs)
    : cfg_(cfg), model_(model), student_(student), rb_(rb), layers_(std::move(layers)),
      coef_(std::move(coef)), comm_(comm), inputs_(inputs),
      // Only the range's adapters: a pipeline stage must not decay other stages' weights.
      params_(student.parameters(model.first(), model.last())),
      units_(model.config().intermediate) {
  ABM_CHECK(layers_.size() == coef_.size(), "one coefficient per selected layer");
  ABM_CHECK(rb_.size() > 0, "empty representative batch");
}

std::vector<int64_t> AbmTrainer::needed_samples() const {
  const int64_t N = rb_.size();
  std::set<int64_t> need;
  // Steps cycle through the batch, so after N / gcd steps the slices repeat.
  for (int64_t s = 0; s < cfg_.steps && static_cast<int64_t>(need.size()) < N; ++s)
    for (const SampleRange& r : rank_slice(s, cfg_.batch, comm_.rank(), comm_.size(), cfg_.micro_batch))
      for (int64_t k : cycled_samples(r, N)) need.insert(k);
  SampleRange mine = shard(N, comm_.rank(), comm_.size());
  for (int64_t k = mine.begin; k < mine.end; ++k) need.insert(k);
  return {need.begin(), need.end()};
}

void AbmTrainer::capture_base_teacher() {
  TeacherHook before;
  if (all_b_zero(student_, model_.first(), model_.last(), comm_)) {
    // base + x A^T 0 == base bit for bit: the teacher's activations are the student's.
    before_ = at::zeros({1 + 3 * int64_t(layers_.size())}, at::kDouble);
    before = [this, mine = shard(rb_.size(), comm_.rank(), comm_.size())](
                 const GateTaps& taps, const std::vector<int64_t>& which, const PaddedSamples& p) {
      at::Tensor real = p.real.clone();  // only this rank's report shard counts
      for (size_t i = 0; i < which.size(); ++i)
        if (which[i] < mine.begin || which[i] >= mine.end) real[i].fill_(false);
      std::vector<at::Tensor> on;  // the signs being captured: the taps' own
      for (size_t j = 0; j < layers_.size(); ++j) on.push_back(taps.output(j).gt(0));
      add_to_report(before_, taps, on, real, coef_, cfg_.margin);
    };
  }
  student_.set_enabled(false);
  student_.set_train(false);
  teacher_ = capture_teacher(model_, rb_, layers_, needed_samples(), cfg_.micro_batch, inputs_,
                             false, before);
  student_.set_enabled(true);
}

StepEngineOptions abm_step_options(const AbmConfig& cfg) {
  StepEngineOptions o;
  o.batch = cfg.batch;
  o.micro = cfg.micro_batch;
  o.seed = cfg.seed;
  o.dropout_tag = "abm-step";
  o.mean_over_count = false;  // the boundary loss is normalized by the step's known tokens
  o.adamw.weight_decay = cfg.weight_decay;
  o.schedule.peak = cfg.lr;
  o.schedule.kind = "constant";
  return o;
}

MicroResult AbmTrainer::micro_step(int64_t s, const SampleRange& r) {
  const int64_t N = rb_.size();
  // The step's token count over all ranks is known everywhere (every rank holds the batch).
  std::vector<int64_t> all;
  for (int64_t n = s * cfg_.batch; n < (s + 1) * cfg_.batch; ++n) all.push_back(n % N);
  const double denom = double(rb_.tokens(all)) * double(units_);
  GateTaps taps(model_, layers_);
  std::vector<int64_t> which = cycled_samples(r, N);
  PaddedSamples p = pad_samples(rb_, which);
  model_.forward_layers(range_input(model_, rb_, which, p.ids, inputs_));
  at::Tensor L = at::zeros({}, at::TensorOptions(at::kFloat).device(model_.device()));
  for (size_t j = 0; j < layers_.size(); ++j) {
    at::Tensor on = padded_signs(teacher_, j, which, p.ids.size(1));
    L = L + boundary_loss_sum(taps.output(j), on, p.real, cfg_.margin) * (coef_[j] / denom);
  }
  taps.clear();
  L.backward();
  MicroResult m;
  m.loss = L.item<double>();  // this micro-batch's part of the step's loss
  return m;
}

void add_to_report(at::Tensor& acc, const GateTaps& taps, const std::vector<at::Tensor>& on,
                   const at::Tensor& real, const std::vector<double>& coef, double margin) {
  for (size_t j = 0; j < on.size(); ++j) {
    acc[0] += boundary_loss_sum(taps.output(j), on[j], real, margin).item<double>() * coef[j];
    BoundaryCounts c = boundary_counts(taps.output(j), on[j], real, margin);
    acc[1 + 3 * j] += double(c.units);
    acc[2 + 3 * j] += double(c.agree);
    acc[3 + 3 * j] += double(c.violations);
  }
}

bool all_b_zero(const AdapterSet& student, int64_t first, int64_t last, Communicator& comm) {
  at::Tensor nonzero = at::zeros({1}, at::kDouble);
  for (const AdaptedModule& m : student.modules())
    if (m.layer >= first && m.layer < last)
      nonzero[0] += m.lora->B().detach().ne(0).any().item<bool>() ? 1.0 : 0.0;
  comm.all_reduce(nonzero);
  return nonzero.item<double>() == 0;
}

BoundaryReport AbmTrainer::finish(at::Tensor acc) {
  comm_.all_reduce(acc);
  BoundaryReport rep;
  rep.layers.resize(layers_.size());
  rep.loss = acc[0].item<double>() / (double(rb_.tokens()) * double(units_));
  for (size_t j = 0; j < layers_.size(); ++j) {
    rep.layers[j].units = static_cast<int64_t>(acc[1 + 3 * j].item<double>());
    rep.layers[j].agree = static_cast<int64_t>(acc[2 + 3 * j].item<double>());
    rep.layers[j].violations = static_cast<int64_t>(acc[3 + 3 * j].item<double>());
  }
  return rep;
}

BoundaryReport AbmTrainer::report() {
  at::NoGradGuard ng;
  student_.set_train(false);
  SampleRange mine = shard(rb_.size(), comm_.rank(), comm_.size());
  at::Tensor acc = at::zeros({1 + 3 * int64_t(layers_.size())}, at::kDouble);
  GateTaps taps(model_, layers_);
  Progress progress = Progress::pass((mine.end - mine.begin + cfg_.micro_batch - 1) / cfg_.micro_batch,
                                     progress_label_ + "boundary report ", "micro-batch");
  for (int64_t k0 = mine.begin; k0 < mine.end; k0 += cfg_.micro_batch) {
    std::vector<int64_t> which;
    for (int64_t k = k0; k < std::min(mine.end, k0 + cfg_.micro_batch); ++k) which.push_back(k);
    PaddedSamples p = pad_samples(rb_, which);
    model_.forward_layers(range_input(model_, rb_, which, p.ids, inputs_));
    std::vector<at::Tensor> on;
    for (size_t j = 0; j < layers_.size(); ++j) on.push_back(padded_signs(teacher_, j, which, p.ids.size(1)));
    add_to_report(acc, taps, on, p.real, coef_, cfg_.margin);
    taps.clear();
    progress.update((k0 - mine.begin) / cfg_.micro_batch + 1);
  }
  progress.finish();
  return finish(acc);
}

std::vector<double> AbmTrainer::optimize() {
  ABM_CHECK(teacher_.layers == layers_, "the teacher signs were captured for other layers");
  StepEngine engine(params_, abm_step_options(cfg_), comm_, &student_);
  std::vector<double> losses;
  Progress progress(cfg_.steps, cfg_.log_every, 0, progress_label_);
  for (int64_t s = 0; s < cfg_.steps; ++s) {
    losses.push_back(engine.step(s, [&](const MicroBatch& mb) { return micro_step(s, mb.samples); }).loss);
    progress.update(s + 1, cat("loss ", losses.back()));
  }
  progress.finish();
  engine.release_grads();
  student_.set_train(false);
  return losses;
}

AbmResult AbmTrainer::run() {
  Timer timer;
  AbmResult res;
  res.layers = layers_;
  res.coef = coef_;
  res.teacher_seconds = teacher_.seconds;
  // The teacher pass's report when it had one (capture_base_teacher with B = 0).
  res.before = before_.defined() ? finish(std::exchange(before_, at::Tensor())) : report();
  Timer steps;
  res.loss = optimize();
  res.step_seconds = steps.seconds();
  res.after = report();
  res.seconds = timer.seconds();
  return res;
}

}  // namespace abm
