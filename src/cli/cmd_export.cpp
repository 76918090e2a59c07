// abmlora export: write an adapter as a PEFT directory, and/or merge it into a full HF
// model directory (--merge OUT).
#include "cli/commands.h"
#include "core/log.h"
#include "core/options.h"
#include "lora/peft_io.h"

namespace abm {

int cmd_export(int argc, char** argv) {
  struct {
    std::string model, adapter, out, merge, dtype = "fp32";
  } cfg;
  Options opts("export", "Re-export a PEFT adapter, or merge it into a full model.");
  opts.add()("model", po::value(&cfg.model)->required(), "base model directory")
      ("adapter", po::value(&cfg.adapter)->required(), "adapter directory (PEFT format)")
      ("out", po::value(&cfg.out)->default_value(""), "write the adapter here (PEFT format)")
      ("merge", po::value(&cfg.merge)->default_value(""), "write base + adapter merged here (HF model)")
      ("dtype", po::value(&cfg.dtype)->default_value(cfg.dtype), "merged model dtype: fp32 | bf16");
  if (!opts.parse(argc, argv)) return 0;
  ABM_REQUIRE(!cfg.out.empty() || !cfg.merge.empty(), "export: give --out DIR and/or --merge DIR");
  at::ScalarType dtype = parse_dtype(cfg.dtype, "--dtype");
  if (Runtime::rank() != 0) return 0;
  if (!cfg.out.empty()) {
    LlamaModel model = LlamaModel::load(cfg.model);
    PeftAdapter a = import_peft(cfg.adapter, model);
    export_peft(a.adapters, cfg.model, cfg.out);
    log0("export: adapter -> ", cfg.out);
  }
  if (!cfg.merge.empty()) {
    merge_to_model_dir(cfg.model, cfg.adapter, cfg.merge, dtype);
    log0("export: merged model -> ", cfg.merge);
  }
  return 0;
}

}  // namespace abm
