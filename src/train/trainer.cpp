#include "train/trainer.h"

#include <cmath>

#include "comm/replica_check.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/test_hooks.h"
#include "data/loss.h"
#include "lora/init.h"
#include "train/flops.h"

namespace abm {

Trainer::Trainer(const TrainConfig& cfg, LlamaModel& model, AdapterSet* adapters,
                 const DataSplits& data, Communicator& comm)
    : cfg_(cfg), model_(model), adapters_(adapters), data_(data), comm_(comm),
      sampler_(data.train.size(), cfg.seed), budget_(cfg.time_budget) {
  std::vector<at::Tensor> params;
  if (adapters_) {
    params = adapters_->parameters();
  } else {
    for (auto& [name, w] : model_.named_weights()) {
      w.requires_grad_(true);
      params.push_back(w);
    }
  }
  total_ = cfg.total_steps(data.train.size());
  StepEngineOptions o;
  o.batch = cfg.global_batch;
  o.micro = cfg.micro_batch;
  o.seed = cfg.seed;
  o.dropout_tag = "step";
  o.mean_over_count = true;
  o.clip = cfg.clip;
  o.adamw.weight_decay = cfg.weight_decay;
  o.schedule.peak = cfg.lr;
  o.schedule.warmup = cfg.warmup;
  o.schedule.total = total_;
  o.schedule.min_ratio = cfg.min_lr_ratio;
  o.schedule.kind = cfg.schedule;
  // Gradients travel with their tensors: MPI on the CPU, NCCL (or MPI, staged) on a GPU.
  if (!model.device().is_cpu()) device_comm_ = make_device_communicator(model.device());
  engine_ = std::make_unique<StepEngine>(std::move(params), o, device_comm_ ? *device_comm_ : comm,
                                         adapters);
  // The hand-written step is the CPU's; a device runs LibTorch's kernels through autograd.
  if (cfg.backprop == "manual" && model.device().is_cpu())
    backprop_ = std::make_unique<Backprop>(model, adapters, cfg.recompute);
  else
    model.set_recompute(cfg.recompute);
  peak_gflops_ = matmul_peak_gflops(1024, model.dtype(), 3, model.device());
  // Nodes of the job, for the scaling report: ranks are spread evenly by launchers.
  nodes_ = std::max(1, comm.size() / std::max(1, Runtime::local_size()));
}

// The LM objective of one micro-batch: the sum of its token losses (the engine divides by
// the global batch's target count) and its gradient.
MicroResult Trainer::lm_loss(const SampleRange& range) {
  MicroResult m;
  std::vector<int64_t> rows;
  for (int64_t n = range.begin; n < range.end; ++n) {
    rows.push_back(sampler_.global_index(n));
    uint64_t h = uint64_t(n) * 0x9E3779B97F4A7C15ULL ^ uint64_t(rows.back());
    m.hash += int64_t(splitmix64(h) >> 32);
  }
  Batch b = make_batch(data_.train, rows);
  if (backprop_) {
    LossSum ls = backprop_->run(b);
    m.loss = ls.sum;
    m.count = ls.count;
  } else {
    TokenLoss tl = token_loss_sum(batch_logits(model_, b), b.labels);
    tl.sum.backward();
    if (model_.device().is_cpu()) m.loss = tl.sum.item<double>();
    else m.device_loss = tl.sum.detach();  // read once per step, with the totals
    m.count = tl.count;
  }
  m.positions = b.ids.numel();
  return m;
}

StepResult Trainer::train_step() {
  Timer timer;
  StepTotals t = engine_->step(step_, [this](const MicroBatch& mb) { return lm_loss(mb.samples); });
  StepResult r;
  r.loss = t.loss;
  r.lr = t.lr;
  r.grad_norm = t.grad_norm;
  r.targets = t.count;
  r.positions = t.positions;
  r.batch_hash = t.hash;
  ++step_;
  tokens_seen_ += r.targets;
  r.seconds = timer.seconds();
  return r;
}

EvalResult Trainer::evaluate(const Dataset& d) {
  if (adapters_) adapters_->set_train(false);
  return abm::evaluate(model_, d, cfg_.micro_batch, comm_);
}

void Trainer::check_replicas() {
  ABM_REQUIRE(identical_on_all_ranks(engine_->params(), comm_), "replica drift at step ", step_,
              ": the trainable parameters differ between ranks");
}

RunEnd Trainer::run() {
  const LlamaConfig& c = model_.config();
  log0("train: ", total_, " steps, global batch ", cfg_.global_batch, " (", comm_.size(),
       " ranks x micro ", cfg_.micro_batch, " x accumulation ", engine_->accumulation(), "), ",
       engine_->params().size(),
       " trainable tensors, matmul peak ", int(peak_gflops_), " GFLOP/s per rank");
  const bool checkpoints = !cfg_.out.empty();  // "" = bench: no run directory
  if (checkpoints) {
    const std::string path = cfg_.out + "/metrics.jsonl";
    // The curve continues from the checkpoint: later records (written after it, by a run
    // that was killed or stopped before its next checkpoint) are dropped, not repeated.
    if (comm_.rank() == 0) truncate_metrics(path, resumed_at_);
    metrics_ = MetricsLog(path);
  }
  Progress progress(total_, cfg_.log_every, step_);
  if (on_step && step_ == 0) {  // a record of the initial state (e.g. information loss at init)
    nlohmann::json r0 = {{"step", 0}};
    on_step(0, r0);
    if (r0.size() > 1) metrics_.write(r0);
  }
  RunEnd end;
  while (step_ < total_) {
    Timer step_timer;
    StepResult r = train_step();
    int64_t T = r.positions / std::max<int64_t>(1, cfg_.global_batch);
    double tps = double(r.positions) / r.seconds;
    double mfu = tps * train_flops_per_token(c, T, adapters_ == nullptr) / 1e9 /
                 (peak_gflops_ * comm_.size());
    nlohmann::json rec = {{"step", step_},         {"loss", r.loss},
                          {"lr", r.lr},            {"grad_norm", r.grad_norm},
                          {"targets", r.targets},  {"tokens_per_s", tps},
                          {"mfu", mfu},            {"step_s", r.seconds},
                          {"samples_seen", step_ * cfg_.global_batch},
                          {"tokens_seen", tokens_seen_}, {"batch_hash", r.batch_hash},
                          {"ranks", comm_.size()}, {"nodes", nodes_},
                          {"peak_rss_mib", peak_rss_bytes() / 1048576.0}};
    if (cfg_.drift_check_every > 0 && step_ % cfg_.drift_check_every == 0) check_replicas();
    if (cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0 && data_.eval.size() > 0) {
      EvalResult e = evaluate(data_.eval);
      rec["eval_loss"] = e.loss;
      rec["eval_ppl"] = e.ppl();
    }
    if (on_step) on_step(step_, rec);
    metrics_.write(rec);
    char status[160];
    std::snprintf(status, sizeof(status), "loss %.4f lr %.2e gnorm %.3f %.0f tok/s MFU %.0f%%",
                  r.loss, r.lr, r.grad_norm, tps, 100 * mfu);
    progress.update(step_, status);

    test_hooks::after_step(step_, comm_.rank());
    budget_.record_step(step_timer.seconds());
    // Every rank, every step: one all-reduce decides for all (a signal may reach only some).
    const StopDecision stop = agree_to_stop(comm_, budget_);
    const bool last = step_ == total_;
    if (checkpoints && (stop.stop || last ||
                        (cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0)))
      save_checkpoint();
    if (stop.stop && !last) {
      end = {false, stop.reason};
      break;
    }
  }
  progress.finish();
  check_replicas();
  return end;
}

}  // namespace abm
