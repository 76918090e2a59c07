// abmlora export: write an adapter as a PEFT directory, and/or merge it into a full HF
// model directory (--merge OUT).
#include "cli/commands.h"
#include "core/device.h"
#include "core/log.h"
#include "core/options.h"
#include "core/staged_dir.h"
#include "lora/peft_io.h"

namespace abm {
namespace {

// Each output is written into a staging directory and renamed into place when complete,
// so a failure midway leaves what was there before; the inputs are never an output.
void export_on_rank0(const std::string& model_dir, const std::string& adapter_dir,
                     const std::string& out, const std::string& merge, at::ScalarType dtype,
                     at::Device device, bool force) {
  const std::vector<std::string> inputs = {model_dir, adapter_dir};
  if (!out.empty()) {
    StagedDir dir(out, "--out", force, inputs);
    LlamaModel model = LlamaModel::load(model_dir);
    PeftAdapter a = import_peft(adapter_dir, model);
    export_peft(a.adapters, model_dir, dir.path());
    dir.commit();
    log0("export: adapter -> ", out);
  }
  if (!merge.empty()) {
    StagedDir dir(merge, "--merge", force, inputs);
    merge_to_model_dir(model_dir, adapter_dir, dir.path(), dtype, device);
    dir.commit();
    log0("export: merged model -> ", merge);
  }
}

}  // namespace

int cmd_export(int argc, char** argv) {
  struct {
    // The merge is one r-rank product per weight and the fp32 model may not fit a GPU:
    // the CPU unless asked.
    std::string model, adapter, out, merge, dtype = "fp32", device = "cpu";
    bool force = false;
  } cfg;
  Options opts("export", "Re-export a PEFT adapter, or merge it into a full model.");
  opts.add()("model", po::value(&cfg.model)->required(), "base model directory")
      ("adapter", po::value(&cfg.adapter)->required(), "adapter directory (PEFT format)")
      ("out", po::value(&cfg.out)->default_value(""), "write the adapter here (PEFT format)")
      ("merge", po::value(&cfg.merge)->default_value(""), "write base + adapter merged here (HF model)")
      ("dtype", po::value(&cfg.dtype)->default_value(cfg.dtype), "merged model dtype: fp32 | bf16")
      ("device", po::value(&cfg.device)->default_value(cfg.device), "where --merge computes: cpu | cuda | auto")
      ("force", po::bool_switch(&cfg.force), "replace a non-empty --out / --merge directory (once the new one is complete)");
  if (!opts.parse(argc, argv)) return 0;
  Runtime::agree([&] {
    ABM_REQUIRE(!cfg.out.empty() || !cfg.merge.empty(), "export: give --out DIR and/or --merge DIR");
    at::ScalarType dtype = parse_dtype(cfg.dtype, "--dtype");
    if (Runtime::rank() != 0) return;
    const at::Device device = cfg.merge.empty() ? at::kCPU : resolve_device(cfg.device);
    export_on_rank0(cfg.model, cfg.adapter, cfg.out, cfg.merge, dtype, device, cfg.force);
  });
  return 0;
}

}  // namespace abm
