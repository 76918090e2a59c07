#include "abm/abm_pipeline.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "abm/stage.h"
#include "abm/stage_optimize.h"
#include "abm/stage_passes.h"
#include "comm/local_communicator.h"
#include "comm/mpi_communicator.h"
#include "comm/replica_check.h"
#include "core/check.h"
#include "core/log.h"
#include "core/timer.h"
#include "sharding/partition_planner.h"
#include "sharding/stage_transport.h"

namespace abm {
namespace {

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
  // Hidden states and their gradients travel device to device: NCCL between GPUs (or MPI
  // through the host, ABM_COMM_BACKEND=mpi), MPI between CPUs.
  std::unique_ptr<Communicator> device_comm;
  if (!model.device().is_cpu()) device_comm = make_device_communicator(model.device());
  StageTransport link(device_comm ? *device_comm : comm, map, model.device());
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
