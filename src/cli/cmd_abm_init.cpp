// abmlora abm-init: the ABM-LoRA initialization alone. Takes train's options (one INI
// serves both; the optimization ones are ignored) plus the --abm-* flags, and writes the
// initialized adapter (PEFT format) and abm.json (loss curve, per-layer sign agreement and
// margin violations before/after, time, the representative batch's indices).
// On S > 1 stages each rank loads only its stage's tensors (sharding/stage_loader.h), so
// a rank needs memory for its share of the model; rank 0 gathers the adapters to export.
// With ranks/S > 1 replicas per stage, each replica loads its stage (stage_map.h).
#include "abm/abm_init.h"
#include "abm/abm_pipeline.h"
#include "cli/commands.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "lora/peft_io.h"
#include "sharding/gather_named.h"
#include "sharding/stage_loader.h"
#include "sharding/stage_map.h"
#include "train/compute_dtype.h"
#include "train/train_config.h"

namespace abm {

int cmd_abm_init(int argc, char** argv) {
  TrainConfig cfg;
  AbmConfig abm;
  Options opts("abm-init", "ABM-LoRA initialization: match the teacher's activation boundaries.");
  cfg.declare(opts);
  abm.declare(opts);
  std::string weight_dtype;  // abm-init only: the trainer's fused backward needs one dtype
  opts.add()("weight-dtype", po::value(&weight_dtype)->default_value(""),
             "keep the frozen matrices in this dtype (bf16 halves the memory) and compute "
             "in --dtype; \"\" = --dtype");
  if (!opts.parse(argc, argv)) return 0;
  if (cfg.steps == 0 && cfg.epochs == 0) cfg.steps = 1;  // train's schedule is not used here
  if (cfg.out == "runs/train") cfg.out = "runs/abm-init";
  cfg.init = "kaiming";  // the student starts from the standard init
  abm.seed = cfg.seed;
  abm.log_every = cfg.log_every;
  opts.print_table();
  auto comm = make_mpi_communicator();
  int threads = Runtime::set_threads(cfg.threads);  // before --dtype auto measures with them
  log0("abm-init: ", comm->size(), " rank(s) x ", threads, " thread(s) per rank");

  LlamaModel model;
  DataSplits data;
  std::unique_ptr<AdapterSet> student;
  // Training's batch is not used here; keep it valid for any world size.
  cfg.global_batch = cfg.micro_batch * comm->size();
  Runtime::agree([&] {
    cfg.validate(comm->size());
    abm.validate(comm->size());
    ABM_REQUIRE(abm.teacher == "base", "--abm-teacher task trains the teacher on the task first: "
                "use train --init abm (abm-init takes a trained one with --teacher-adapter DIR)");
    ABM_REQUIRE(!cfg.full, "abm-init initializes LoRA adapters; --full makes no sense here");
    const at::Device device = resolve_device(cfg.device);
    const at::ScalarType dtype = command_dtype("abm-init", cfg.dtype, cfg.model, comm.get(), device);
    cfg.dtype = compute_dtype_name(dtype);
    opts.set("dtype", cfg.dtype);
    const at::ScalarType storage =
        weight_dtype.empty() ? at::ScalarType::Undefined : parse_dtype(weight_dtype, "--weight-dtype");
    const StageMap map(comm->size(), abm.stages);
    if (map.stages() > 1) {
      const LlamaConfig mc = LlamaConfig::load(cfg.model + "/config.json");
      const StagePlan stage = abm_stage_plan(mc, map.stages(), abm)[map.stage_of(comm->rank())];
      model = load_stage(cfg.model, stage, dtype, storage, device);
    } else {
      LoadOptions lo;
      lo.dtype = dtype;
      lo.storage = storage;
      lo.device = device;
      model = LlamaModel::load(cfg.model, lo);
    }
    select_abm_layers(abm.layers, model.config().layers);
    if (!abm.teacher_adapter.empty()) read_peft_config(abm.teacher_adapter);
    data = load_datasets(cfg.data_options(model.config().vocab));
    ABM_REQUIRE(data.train.size() > 0, cfg.data, ": no training examples");
    LoraConfig lc = cfg.lora();
    lc.validate_for(model.config());
    student = std::make_unique<AdapterSet>(AdapterSet::attach(model, lc));
  });

  if (model.first() > 0 || model.last() < model.config().layers)
    log_all("abm-init: this rank loaded layers [", model.first(), ", ", model.last(), ") of ",
        model.config().layers, model.has_embedding() ? " + embedding" : "",
        model.has_head() ? " + norm and head" : "");
  log_abm_memory("loading");
  AbmRun run = abm_initialize(abm, model, *student, data.train, *comm);
  // Stage-local load: every rank holds only its stage's adapters; replica 0 of each stage
  // sends them (the other replicas hold the same).
  const bool replica0 = StageMap(comm->size(), abm.stages).replica_of(comm->rank()) == 0;
  const NamedTensors adapters =
      model.first() == 0 && model.last() == model.config().layers
          ? student->named_tensors()
          : gather_named_tensors(replica0 ? student->named_tensors() : NamedTensors{}, *comm);

  log_abm_memory("the gather");
  if (Runtime::rank() == 0) {
    make_dirs(cfg.out);
    write_text_atomic(cfg.out + "/config.ini", opts.resolved_ini());
    write_text_atomic(cfg.out + "/abm.json", abm_run_json(abm, run).dump(1) + "\n");
    export_peft(adapters, student->config(), cfg.model, cfg.out + "/adapter");
    log0("abm-init: adapter (PEFT format) ", cfg.out, "/adapter, report ", cfg.out, "/abm.json");
  }
  comm->barrier();
  return 0;
}

}  // namespace abm
