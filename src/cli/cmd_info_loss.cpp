// abmlora info-loss: how much of the full gradient of the frozen weights an adapter's
// tangent space loses (docs/design.md §3), on a probe batch = the first global batch of train's
// data order (--global-batch rows, --seed). The adapter is a PEFT directory (--adapter),
// or a fresh one from train's LoRA options (--init kaiming|gaussian). Prints the relative
// loss per module kind, per layer and in total; --json FILE writes them.
#include "abm/info_loss.h"
#include "abm/svd_init.h"
#include "cli/commands.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/sampler.h"
#include "lora/peft_io.h"
#include "train/compute_dtype.h"
#include "train/train_config.h"

namespace abm {

int cmd_info_loss(int argc, char** argv) {
  TrainConfig cfg;
  std::string adapter_dir, json_out;
  Options opts("info-loss", "Information loss of a LoRA adapter on a probe batch.");
  cfg.declare(opts);
  opts.add()("adapter", po::value(&adapter_dir)->default_value(""), "PEFT adapter directory (default: a fresh --init)")
      ("json", po::value(&json_out)->default_value(""), "also write the result to this JSON file");
  if (!opts.parse(argc, argv)) return 0;
  if (cfg.steps == 0 && cfg.epochs == 0) cfg.steps = 1;  // no training happens here
  opts.print_table();
  auto comm = make_mpi_communicator();
  Runtime::set_threads(cfg.threads);  // before --dtype auto measures with them

  LlamaModel model;
  DataSplits data;
  std::unique_ptr<AdapterSet> adapters;
  Runtime::agree([&] {
    cfg.validate(1);  // the probe is split over ranks, not by micro-batch divisibility
    ABM_REQUIRE(!cfg.full, "info-loss measures an adapter; --full makes no sense here");
    if (!json_out.empty()) refuse_special_file(json_out);  // before the computation
    LoadOptions lo;
    lo.device = resolve_device(cfg.device);
    lo.dtype = command_dtype("info-loss", cfg.dtype, cfg.model, comm.get(), lo.device);
    model = LlamaModel::load(cfg.model, lo);
    data = load_datasets(cfg.data_options(model.config().vocab));
    ABM_REQUIRE(data.train.size() > 0, cfg.data, ": no training rows");
    if (!adapter_dir.empty()) {
      adapters = std::make_unique<AdapterSet>(std::move(import_peft(adapter_dir, model).adapters));
    } else {
      LoraConfig lc = cfg.lora();
      lc.validate_for(model.config());
      if (lc.init != "lora-ga") adapters = std::make_unique<AdapterSet>(AdapterSet::attach(model, lc));
    }
  });
  Sampler sampler(data.train.size(), cfg.seed);
  std::vector<int64_t> rows;
  for (int64_t n = 0; n < std::min(cfg.global_batch, data.train.size()); ++n)
    rows.push_back(sampler.global_index(n));
  if (!adapters)  // --init lora-ga: its start comes from the same probe's gradient
    adapters = std::make_unique<AdapterSet>(
        attach_lora_ga(model, cfg.lora(), data.train, rows, cfg.micro_batch, *comm));
  ModelInfoLoss il = probe_information_loss(model, *adapters, data.train, rows,
                                            cfg.micro_batch, *comm);
  if (Runtime::rank() == 0) {
    std::printf("information loss (lost / ||G||^2) on %zu probe rows:\n", rows.size());
    for (auto& [k, v] : il.per_kind) std::printf("  %-10s %.6f\n", k.c_str(), v.relative());
    for (auto& [l, v] : il.per_layer) std::printf("  layer %-4ld %.6f\n", long(l), v.relative());
    std::printf("  total      %.6f\n", il.total.relative());
    if (!json_out.empty()) write_text_atomic(json_out, info_loss_json(il).dump(1) + "\n");
  }
  comm->barrier();
  return 0;
}

}  // namespace abm
