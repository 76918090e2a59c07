// abmlora import-llama2c IN.bin OUT_DIR: llama2.c checkpoint -> HF directory.
#include "cli/commands.h"
#include "core/log.h"
#include "core/options.h"
#include "model/llama2c_import.h"

namespace abm {

int cmd_import_llama2c(int argc, char** argv) {
  struct {
    std::string in, out, dtype = "fp32";
  } cfg;
  Options opts("import-llama2c", "Convert a llama2.c checkpoint (legacy, v1, v2) to config.json + "
                                 "model.safetensors in Hugging Face layout.\n"
                                 "Usage: abmlora import-llama2c IN.bin OUT_DIR");
  opts.add()("in", po::value(&cfg.in)->required(), "llama2.c checkpoint")
      ("out", po::value(&cfg.out)->required(), "output directory")
      ("dtype", po::value(&cfg.dtype)->default_value(cfg.dtype), "stored dtype: fp32 | bf16");
  opts.positional("in");
  opts.positional("out");
  if (!opts.parse(argc, argv)) return 0;
  Llama2cInfo info;
  LlamaModel m;
  Runtime::agree([&] {
    at::ScalarType dtype = parse_dtype(cfg.dtype, "--dtype");
    m = import_llama2c(cfg.in, &info);
    if (Runtime::rank() == 0) m.save(cfg.out, dtype);
  });
  const LlamaConfig& c = m.config();
  log0("import-llama2c: ", cfg.in, " (format ", info.version == 0 ? "legacy" : cat("v", info.version),
       ", dim ", c.hidden, ", layers ", c.layers, ", heads ", c.heads, "/", c.kv_heads, " kv, vocab ",
       c.vocab, ", ", c.tie_embeddings ? "tied" : "untied", " head) -> ", cfg.out);
  return 0;
}

}  // namespace abm
