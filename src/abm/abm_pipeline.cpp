#include "abm/abm_pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "abm/gate_tap.h"
#include "comm/local_communicator.h"
#include "comm/mpi_communicator.h"
#include "comm/replica_check.h"
#include "core/check.h"
#include "core/log.h"
#include "core/timer.h"
#include "lora/init.h"
#include "sharding/partition_planner.h"
#include "sharding/stage_transport.h"
#include "train/adamw.h"
#include "train/grad_buffer.h"

namespace abm {
namespace {

// This rank's stage: its layer range as a view of the replica (sharing the weights and
// the attached adapters), its selected layers with their loss coefficients, its links.
// With R > 1 replicas per stage, replica q runs its own pipeline on its share of the
// samples, and `group` (the R ranks of stage k) sums their gradients and reports.
struct Stage {
  int k = 0, S = 1, q = 0, R = 1;
  Communicator* group = nullptr;
  std::vector<StagePlan> plan;
  LlamaModel view;
  std::vector<int64_t> layers;  // selected layers inside the stage, ascending
  std::vector<double> coef;     // their c_j / n (n = selected layers of the whole model)
  StageTransport* link = nullptr;
  bool first() const { return k == 0; }
  bool last() const { return k == S - 1; }
  // Micro-batch `chunk` of a report (or of the teacher pass's report) is replica q's.
  bool reports(int64_t chunk) const { return chunk % R == q; }
  int64_t begin() const { return plan[k].first_layer; }
  int64_t end() const { return plan[k].last_layer; }
};

// Micro-batch `id` of samples `which` enters the stage: embedded on the first stage, the
// previous stage's output ([b, T, hidden]) elsewhere.
at::Tensor stage_input(const Stage& st, const LlamaModel& view, const PaddedSamples& p, int64_t id) {
  if (st.first()) return view.embed(p.ids);
  return st.link->recv_forward({p.ids.size(0), p.ids.size(1), view.config().hidden},
                               view.dtype(), id);
}

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

at::Tensor report_accumulator(const Stage& st) {
  return at::zeros({1 + 3 * int64_t(st.layers.size())}, at::kDouble);
}

// Every rank's accumulator, gathered to every rank, summed over the replicas of each stage
// and read in depth order, as one report.
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

// The pipelined teacher pass over `view` with whatever is attached and enabled: signs of
// the stage's selected layers for every sample, and (not on the first stage) the teacher
// hidden state entering the stage, [len, hidden] per sample.
// With `report` (the student equals the teacher: B = 0 and the base is the teacher), also
// accumulates the student's "before" report from the same activations, sparing a pass.
TeacherSigns pipeline_teacher(const Stage& st, LlamaModel& view, const RepresentativeBatch& rb,
                              const AbmConfig& cfg, std::vector<at::Tensor>& inputs,
                              at::Tensor* report = nullptr) {
  Timer timer;
  at::NoGradGuard ng;
  TeacherSigns t;
  t.layers = st.layers;
  t.on.resize(rb.size());
  inputs.assign(rb.size(), at::Tensor());
  GateTaps taps(view, st.layers);
  int64_t id = 0;
  for (const auto& which : chunks(rb.size(), cfg.micro_batch)) {
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
    // Test hook: ABM_TEST_KILL_STAGE=K kills stage K here (SIGKILL, no cleanup), so a test
    // can check that a dead rank ends the whole job instead of leaving its neighbours
    // blocked in a receive.
    if (const char* kill = std::getenv("ABM_TEST_KILL_STAGE"); kill && std::atoi(kill) == st.k)
      std::raise(SIGKILL);
  }
  t.seconds = timer.seconds();
  return t;
}

// The student end to end through the pipeline, dropout off: the loss and the counts of
// every selected layer of the model, gathered to every rank in depth order.
BoundaryReport pipeline_report(Stage& st, AdapterSet& student, const AbmConfig& cfg,
                               const RepresentativeBatch& rb, const TeacherSigns& t,
                               Communicator& comm) {
  at::NoGradGuard ng;
  student.set_train(false);
  at::Tensor acc = report_accumulator(st);
  GateTaps taps(st.view, st.layers);
  std::vector<std::vector<int64_t>> all = chunks(rb.size(), cfg.micro_batch);
  for (int64_t id = 0; id < static_cast<int64_t>(all.size()); ++id) {
    if (!st.reports(id)) continue;
    PaddedSamples p = pad_samples(rb, all[id]);
    at::Tensor out = st.view.forward_layers(stage_input(st, st.view, p, id));
    if (!st.last()) st.link->send_forward(out, id);
    add_report(acc, st, taps, t, all[id], p, cfg.margin);
    taps.clear();
  }
  return finish_report(acc, st, rb, comm);
}

// Shard scope: the stage alone (data parallel over its replicas), fed the teacher's
// hidden states at its input. Returns the stage's loss per step on replica 0, zeros on
// the others (the caller sums over all ranks).
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

// Global scope: forward stage to stage, dL/d(hidden) back. Stage k's parameters get the
// gradient of its own layers' loss plus, through its output, that of every later stage.
// Replica q takes its slice of each step's samples; the stage's replicas sum gradients.
// Returns this rank's part of each step's loss (the caller sums over all ranks).
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

// Every rank receives every stage's adapters from replica 0 of the stage that owns their
// layer (the replicas of a stage hold identical adapters).
void gather_adapters(AdapterSet& student, const std::vector<StagePlan>& plan, const StageMap& map,
                     Communicator& comm) {
  at::NoGradGuard ng;
  for (const AdaptedModule& m : student.modules()) {
    int owner = 0;
    while (m.layer >= plan[owner].last_layer) ++owner;
    comm.broadcast(m.lora->A(), map.rank_of(owner, 0));
    comm.broadcast(m.lora->B(), map.rank_of(owner, 0));
  }
}

}  // namespace

// ABM_LOG_MEMORY=1: every rank logs its current and peak RSS after each phase (for the
// true-size memory measurement, launch/bench_7b_abm.sh).
void log_abm_memory(const char* phase) {
  static const bool on = std::getenv("ABM_LOG_MEMORY") != nullptr;
  if (!on) return;
  long rss_kib = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    long pages = 0, resident = 0;
    if (std::fscanf(f, "%ld %ld", &pages, &resident) == 2) rss_kib = resident * (sysconf(_SC_PAGESIZE) / 1024);
    std::fclose(f);
  }
  log_all("abm: memory after ", phase, ": RSS ", rss_kib / 1024, " MiB, peak ",
          peak_rss_bytes() / 1048576, " MiB");
}

std::vector<StagePlan> abm_stage_plan(const LlamaConfig& mc, int stages, const AbmConfig& cfg) {
  return plan_stages(mc, stages, cfg.max_length);
}

AbmRun abm_initialize_staged(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                             const Dataset& train, Communicator& comm) {
  const LlamaConfig& mc = model.config();
  StageMap map(comm.size(), cfg.resolved_stages(comm.size()));
  StageTransport link(comm, map);
  Stage st;
  st.k = map.stage_of(comm.rank());
  st.S = map.stages();
  st.q = map.replica_of(comm.rank());
  st.R = map.replicas();
  st.link = &link;
  // The stage's replicas: a sub-group of the world (`comm` spans MPI_COMM_WORLD here).
  std::unique_ptr<Communicator> group;
  if (st.R > 1) group = make_mpi_subgroup(st.k, st.q);
  else group = std::make_unique<LocalCommunicator>();
  st.group = group.get();
  st.plan = abm_stage_plan(mc, st.S, cfg);
  if (comm.rank() == 0)
    log0("abm: stage plan", st.R > 1 ? cat(" (", st.R, " replicas per stage)") : std::string(),
         "\n", plan_table(st.plan));
  // A full replica (training) or exactly this stage's layers (abm-init).
  const bool replica = model.first() == 0 && model.last() == mc.layers;
  ABM_CHECK(replica || (model.first() == st.begin() && model.last() == st.end()),
            "staged ABM needs a full replica or exactly stage ", st.k, "'s layers [", st.begin(),
            ", ", st.end(), "); this rank holds [", model.first(), ", ", model.last(), ")");
  ABM_CHECK(student.first_layer() == model.first() && student.last_layer() == model.last(),
            "the student adapters must cover the loaded layers");

  AbmRun run;
  run.stages = st.S;
  RepresentativeBatch rb = draw_representative(train, cfg.samples, cfg.max_length, cfg.seed, comm);
  run.indices = rb.indices;
  run.samples = rb.size();
  run.tokens = rb.tokens();
  AbmResult& res = run.result;
  res.layers = select_abm_layers(cfg.layers, mc.layers);
  res.coef = abm_layer_weights(static_cast<int64_t>(res.layers.size()));
  for (double& c : res.coef) c /= double(res.layers.size());
  for (size_t j = 0; j < res.layers.size(); ++j)
    if (res.layers[j] >= st.begin() && res.layers[j] < st.end()) {
      st.layers.push_back(res.layers[j]);
      st.coef.push_back(res.coef[j]);
    }

  // Teacher pass. The teacher adapter replaces the student on the replica while it runs,
  // so the stage's view is taken inside (a view copies the projections' adapters).
  // With B = 0 everywhere (kaiming and gaussian inits) and the base as teacher, the
  // student's activations equal the teacher's bit for bit (base + 0), so the "before"
  // report comes out of the teacher pass instead of a pass of its own.
  const bool zero_b = all_b_zero(student, st.begin(), st.end(), comm);  // collective: always
  const bool student_is_teacher = cfg.teacher_adapter.empty() && zero_b;
  std::vector<at::Tensor> inputs;
  TeacherSigns teacher;
  at::Tensor before = report_accumulator(st);
  student.set_train(false);
  if (cfg.teacher_adapter.empty()) {
    student.set_enabled(false);
    LlamaModel view = model.range(st.begin(), st.end());
    teacher = pipeline_teacher(st, view, rb, cfg, inputs, student_is_teacher ? &before : nullptr);
    student.set_enabled(true);
  } else {
    with_teacher_adapter(cfg.teacher_adapter, model, [&] {
      LlamaModel view = model.range(st.begin(), st.end());
      teacher = pipeline_teacher(st, view, rb, cfg, inputs);
    });
  }
  st.view = model.range(st.begin(), st.end());
  res.teacher_seconds = teacher.seconds;
  log_abm_memory("teacher pass");

  Timer timer;
  res.before = student_is_teacher ? finish_report(before, st, rb, comm)
                                  : pipeline_report(st, student, cfg, rb, teacher, comm);
  log_abm_memory("report before");
  Timer steps;
  std::vector<double> mine = cfg.scope == "shard"
                                 ? shard_optimize(st, cfg, student, rb, teacher, inputs)
                                 : global_optimize(st, cfg, student, rb, teacher);
  at::Tensor total = at::tensor(mine, at::kDouble);  // the model's loss = sum over ranks
  comm.all_reduce(total);  // also waits for the slowest stage
  res.step_seconds = steps.seconds();
  log_abm_memory("optimization");
  res.loss.assign(total.data_ptr<double>(), total.data_ptr<double>() + total.numel());
  res.after = pipeline_report(st, student, cfg, rb, teacher, comm);
  log_abm_memory("report after");
  if (replica) {
    gather_adapters(student, st.plan, map, comm);
    uint64_t hash = 0;
    ABM_REQUIRE(identical_on_all_ranks(student.parameters(), comm, &hash),
                "abm: the gathered adapters differ between ranks");
    log0("abm: adapters gathered from ", st.S, " stages, identical on all ", comm.size(),
         " ranks (hash ", hash, ")");
  }
  res.seconds = timer.seconds();
  return run;
}

}  // namespace abm
