// abmlora train / pretrain: validate everything on every rank, attach the adapters, find
// the checkpoint to continue from, run ABM (fresh runs only), run the data-parallel
// trainer, evaluate, export. `pretrain` is `train --full` (all weights). Exit 0 = done,
// 2 = error, 3 = stopped early with a checkpoint (kExitRequeue: requeue with --resume auto).
#include <fstream>

#include "abm/abm_init.h"
#include "abm/info_loss.h"
#include "abm/svd_init.h"
#include "checkpoints/fingerprint.h"
#include "cli/commands.h"
#include "cli/find_checkpoint.h"
#include "cli/task_teacher.h"
#include "comm/communicator.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "core/run_lock.h"
#include "core/timer.h"
#include "data/sampler.h"
#include "lora/peft_io.h"
#include "train/compute_dtype.h"
#include "train/trainer.h"

namespace abm {
namespace {

// What the checkpoint's /abm group keeps of an ABM initialization.
AbmProvenance provenance(const AbmConfig& cfg, const AbmRun& run, const TaskTeacher& teacher) {
  AbmProvenance p;
  p.seed = cfg.seed;
  p.margin = cfg.margin;
  p.lr = cfg.lr;
  p.steps = cfg.steps;
  p.seconds = run.result.teacher_seconds + run.result.seconds;
  p.scope = run.scope;  // as abm.json says
  p.teacher = cfg.teacher_adapter;
  p.samples = run.indices;
  p.layers = run.result.layers;
  p.loss = run.result.loss;
  for (const auto& c : run.result.after.layers) p.accuracy.push_back(c.accuracy());
  p.teacher_steps = teacher.steps;
  p.teacher_loss = teacher.loss;
  p.teacher_seconds = teacher.seconds;
  return p;
}

// --dtype: fp32 for --full (the weights are the trained masters); on resume, what the run
// chose when it started (RUN/config.ini), so a continuation computes as the run did;
// otherwise resolve_compute_dtype (auto measures).
at::ScalarType train_dtype(const TrainConfig& cfg, Communicator& comm, at::Device device) {
  if (cfg.dtype == "auto" && cfg.full) {
    log0("train: compute dtype fp32 (--full trains the weights themselves)");
    return at::kFloat;
  }
  if (cfg.dtype == "auto" && !cfg.resume.empty()) {
    std::ifstream in(cfg.out + "/config.ini");
    for (std::string line; std::getline(in, line);)
      if (line == "dtype = fp32" || line == "dtype = bf16") {
        log0("train: compute dtype ", line.substr(8), " (--dtype auto: kept from ", cfg.out,
             "/config.ini, resuming)");
        return parse_dtype(line.substr(8), "--dtype");
      }
  }
  return command_dtype("train", cfg.dtype, cfg.model, &comm, device);
}

int run_train(int argc, char** argv, bool pretrain) {
  // First: a signal from here on (Slurm's warning, scancel) stops at the first step
  // boundary with a checkpoint instead of killing the process.
  install_stop_handlers();
  const auto started = TimeBudget::Clock::now();  // --time-budget counts from process start
  TrainConfig cfg;
  AbmConfig abm;
  Options opts(pretrain ? "pretrain" : "train",
               pretrain ? "Train all weights of a model (makes small base models)."
                        : "LoRA fine-tuning, data parallel over MPI ranks.");
  cfg.declare(opts);
  if (!pretrain) abm.declare(opts);
  if (!opts.parse(argc, argv)) return 0;
  if (pretrain) cfg.full = true;
  abm.seed = cfg.seed;
  abm.log_every = cfg.log_every;
  opts.print_table();
  auto comm = make_mpi_communicator();
  int threads = Runtime::set_threads(cfg.threads);  // before --dtype auto measures with them
  log0("train: ", comm->size(), " rank(s) x ", threads, " thread(s) per rank");

  // 0. Own the run directory (rank 0, for the process's life): a second job on the same
  // --out is refused before it writes anything there.
  RunLock lock;
  Runtime::agree([&] {
    if (comm->rank() == 0) lock = RunLock(cfg.out);
  });

  // 1. Plan: every input is checked on every rank; one bad rank stops all with one line.
  LlamaModel model;
  DataSplits data;
  std::unique_ptr<AdapterSet> adapters;
  Runtime::agree([&] {
    cfg.validate(comm->size());
    ABM_REQUIRE(!cfg.full || cfg.dtype != "bf16", "--full trains in fp32 only (use --dtype fp32)");
    ABM_REQUIRE(!cfg.full || cfg.info_loss_every == 0, "--info-loss-every measures LoRA adapters, not --full");
    if (cfg.init == "abm") abm.validate(comm->size());
    LoadOptions lo;
    lo.device = resolve_device(cfg.device);
    lo.dtype = train_dtype(cfg, *comm, lo.device);
    cfg.dtype = compute_dtype_name(lo.dtype);
    opts.set("dtype", cfg.dtype);  // RUN/config.ini and the checkpoints record the choice
    model = LlamaModel::load(cfg.model, lo);
    data = load_datasets(cfg.data_options(model.config().vocab));
    ABM_REQUIRE(data.train.size() > 0, cfg.data, ": no training rows");
    if (cfg.full) return;
    if (cfg.init == "abm") {
      select_abm_layers(abm.layers, model.config().layers);
      if (!abm.teacher_adapter.empty()) read_peft_config(abm.teacher_adapter);
    }
    if (cfg.init == "adapter") {
      adapters = std::make_unique<AdapterSet>(std::move(import_peft(cfg.init_adapter, model).adapters));
    } else {
      LoraConfig lc = cfg.lora();
      lc.validate_for(model.config());
      if (cfg.init != "pissa" && cfg.init != "lora-ga")
        adapters = std::make_unique<AdapterSet>(AdapterSet::attach(model, lc));
    }
  });
  // PiSSA's and LoRA-GA's SVDs are shared over the ranks (collective). Also on resume: the
  // offset base is rebuilt (bitwise on the same world size), then the checkpoint's A and B
  // replace the fresh factors.
  // The probe batch of --info-loss-every and LoRA-GA: the first global batch of the order.
  std::vector<int64_t> probe;
  Sampler order(data.train.size(), cfg.seed);
  for (int64_t n = 0; n < std::min(cfg.global_batch, data.train.size()); ++n)
    probe.push_back(order.global_index(n));
  const Timer init_timer;  // the init's wall time (RUN/init.json)
  if (cfg.init == "pissa")
    adapters = std::make_unique<AdapterSet>(attach_pissa(model, cfg.lora(), *comm));
  if (cfg.init == "lora-ga")
    adapters = std::make_unique<AdapterSet>(
        attach_lora_ga(model, cfg.lora(), data.train, probe, cfg.micro_batch, *comm));
  if (adapters) log0("LoRA: ", adapters->modules().size(), " modules, ", adapters->num_params(),
                     " trainable parameters (r ", adapters->config().r, ", scale ",
                     adapters->config().scale(), ")");

  // 2. Resume: the checkpoint holds everything, ABM's result included. Its compatibility
  // is checked before this run's config.ini replaces the one of the run it continues.
  CheckpointState ckpt;
  std::string ckpt_path;
  double init_seconds = init_timer.seconds();
  const bool resumed = find_checkpoint(cfg, adapters.get(), data.train, *comm, ckpt, ckpt_path);
  if (Runtime::rank() == 0) write_text_atomic(cfg.out + "/config.ini", opts.resolved_ini());
  comm->barrier();  // the run directory is complete before anyone writes into it
  CheckpointState identity;  // what every checkpoint of this run says about it
  identity.config = opts.resolved_ini();
  identity.base_model = cfg.model;
  if (Runtime::rank() == 0) identity.base_fingerprint = model_fingerprint(cfg.model);
  identity.data_fingerprint = data.train.fingerprint();
  if (resumed) identity.abm = ckpt.abm;  // the provenance travels from checkpoint to checkpoint

  // 3. ABM initialization (docs/design.md §2), never on resume (the adapters come from the
  // checkpoint): the adapters start from the boundary-matched state; the trainer below
  // creates a fresh optimizer, so the ABM optimizer state is not carried. --abm-teacher
  // task first trains the teacher (RUN/teacher; a stop there exits 3 like the training's).
  if (cfg.init == "abm" && !resumed) {
    TaskTeacher teacher;
    if (abm.teacher == "task") {
      teacher = train_task_teacher(cfg, abm, model, data, *comm, identity,
                                   TimeBudget(cfg.time_budget, 10, started));
      if (!teacher.finished) {
        log0("stopped while training the task teacher (", teacher.reason, "): checkpoint in ",
             cfg.out, "/teacher/checkpoints; exit ", kExitRequeue, " (requeue and continue with "
             "--resume auto)");
        comm->barrier();
        return kExitRequeue;
      }
      abm.teacher_adapter = teacher.adapter;
    }
    const Timer abm_timer;
    AbmRun run = abm_initialize(abm, model, *adapters, data.train, *comm);
    identity.abm = provenance(abm, run, teacher);
    if (Runtime::rank() == 0) {
      nlohmann::json j = abm_run_json(abm, run);
      if (abm.teacher == "task")
        j["teacher_training"] = {{"adapter", teacher.adapter}, {"steps", teacher.steps},
                                 {"loss", teacher.loss}, {"seconds", teacher.seconds},
                                 {"reused", teacher.reused}};
      write_text_atomic(cfg.out + "/abm.json", j.dump(1) + "\n");
      export_peft(*adapters, cfg.model, cfg.out + "/abm-adapter");
    }
    init_seconds += abm_timer.seconds() + teacher.seconds;
  } else if (cfg.init == "abm") {
    log0("abm: not re-run on resume (the checkpoint's adapters started from ABM ",
         ckpt.abm ? "with the provenance in its /abm group" : "- no provenance recorded", ")");
  }
  // The init's cost for reports: SVDs (pissa, lora-ga) or ABM with its teacher, wall clock
  // on rank 0; the task teacher's training counts as the sum of its step times (over all
  // starts of the run).
  if (Runtime::rank() == 0 && !resumed && adapters)
    write_text_atomic(cfg.out + "/init.json",
                      nlohmann::json{{"init", cfg.init}, {"seconds", init_seconds}}.dump() + "\n");

  // 4. Train.
  Trainer trainer(cfg, model, adapters.get(), data, *comm);
  trainer.set_run_identity(std::move(identity));
  trainer.set_time_budget(TimeBudget(cfg.time_budget, 10, started));
  if (resumed) {
    Runtime::agree([&] { trainer.restore(ckpt); });
    log0("resume: ", ckpt_path, " at step ", ckpt.step, " (", ckpt.samples_seen,
         " samples seen; written by ", ckpt.world_size, " rank(s), now ", comm->size(),
         ckpt.world_size != comm->size() ? ": elastic resume, same global batch and data order"
                                         : "", ")");
    ckpt = CheckpointState();  // the trainer holds the values now
  }
  if (cfg.info_loss_every > 0) {
    trainer.on_step = [&, probe](int64_t step, nlohmann::json& rec) {
      if (step % cfg.info_loss_every != 0 && step != 1) return;
      ModelInfoLoss il = probe_information_loss(model, *adapters, data.train, probe,
                                                cfg.micro_batch, *comm);
      rec["info_loss"] = info_loss_json(il);
    };
  }
  const RunEnd end = trainer.run();
  if (!end.finished) {
    log0("stopped at step ", trainer.step(), " of ", trainer.total_steps(), " (", end.reason,
         "): checkpoint written; exit ", kExitRequeue, " (requeue and continue with --resume auto)");
    comm->barrier();
    return kExitRequeue;
  }

  // 5. Evaluate and export.
  if (data.eval.size() > 0) {
    EvalResult e = trainer.evaluate(data.eval);
    log0("eval: loss ", e.loss, ", perplexity ", e.ppl(), " over ", e.targets, " targets");
  }
  if (Runtime::rank() == 0) {
    if (adapters) {
      export_peft(*adapters, cfg.model, cfg.out + "/adapter");
      log0("adapter (PEFT format): ", cfg.out, "/adapter");
    } else {
      model.save(cfg.out + "/model", at::kFloat);
      copy_tokenizer_files(cfg.model, cfg.out + "/model");
      log0("model: ", cfg.out, "/model");
    }
  }
  comm->barrier();
  return 0;
}

}  // namespace

int cmd_train(int argc, char** argv) { return run_train(argc, argv, false); }
int cmd_pretrain(int argc, char** argv) { return run_train(argc, argv, true); }

}  // namespace abm
