// abmlora train / pretrain: validate everything on every rank, attach the adapters, run
// the data-parallel trainer, evaluate, export. `pretrain` is `train --full` (all weights).
#include "abm/abm_init.h"
#include "abm/info_loss.h"
#include "cli/commands.h"
#include "comm/communicator.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "lora/peft_io.h"
#include "train/trainer.h"

namespace abm {
namespace {

int run_train(int argc, char** argv, bool pretrain) {
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
  opts.print_table();
  auto comm = make_mpi_communicator();

  // 1. Plan: every input is checked on every rank; one bad rank stops all with one line.
  LlamaModel model;
  DataSplits data;
  std::unique_ptr<AdapterSet> adapters;
  Runtime::agree([&] {
    cfg.validate(comm->size());
    ABM_REQUIRE(!cfg.full || cfg.dtype == "fp32", "--full trains in fp32 only (use --dtype fp32)");
    ABM_REQUIRE(!cfg.full || cfg.info_loss_every == 0, "--info-loss-every measures LoRA adapters, not --full");
    if (cfg.init == "abm") abm.validate(comm->size());
    LoadOptions lo;
    lo.dtype = parse_dtype(cfg.dtype, "--dtype");
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
      adapters = std::make_unique<AdapterSet>(AdapterSet::attach(model, lc));
    }
  });
  int threads = Runtime::set_threads(cfg.threads);
  log0("train: ", comm->size(), " rank(s) x ", threads, " thread(s) per rank");
  if (adapters) log0("LoRA: ", adapters->modules().size(), " modules, ", adapters->num_params(),
                     " trainable parameters (r ", adapters->config().r, ", scale ",
                     adapters->config().scale(), ")");
  if (Runtime::rank() == 0) {
    make_dirs(cfg.out);
    write_text_atomic(cfg.out + "/config.ini", opts.resolved_ini());
  }
  comm->barrier();  // the run directory exists before anyone writes into it

  // 2. ABM initialization (DESIGN §1): the adapters start from the boundary-matched state;
  // the trainer below creates a fresh optimizer, so the ABM optimizer state is not carried.
  if (cfg.init == "abm") {
    AbmRun run = abm_initialize(abm, model, *adapters, data.train, *comm);
    if (Runtime::rank() == 0) {
      write_text_atomic(cfg.out + "/abm.json", abm_run_json(abm, run).dump(1) + "\n");
      export_peft(*adapters, cfg.model, cfg.out + "/abm-adapter");
    }
  }

  // 3. Train.
  Trainer trainer(cfg, model, adapters.get(), data, *comm);
  if (cfg.info_loss_every > 0) {
    // The probe batch is fixed for the run: the first global batch of the data order.
    std::vector<int64_t> probe;
    Sampler order(data.train.size(), cfg.seed);
    for (int64_t n = 0; n < std::min(cfg.global_batch, data.train.size()); ++n)
      probe.push_back(order.global_index(n));
    trainer.on_step = [&, probe](int64_t step, nlohmann::json& rec) {
      if (step % cfg.info_loss_every != 0 && step != 1) return;
      ModelInfoLoss il = probe_information_loss(model, *adapters, data.train, probe,
                                                cfg.micro_batch, *comm);
      rec["info_loss"] = info_loss_json(il);
    };
  }
  trainer.run();

  // 4. Evaluate and export.
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
