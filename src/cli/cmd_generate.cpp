// abmlora generate: load a model (rank 0 speaks), encode a prompt, decode new tokens.
#include <iostream>

#include "cli/commands.h"
#include "core/device.h"
#include "core/log.h"
#include "core/options.h"
#include "core/text.h"
#include "lora/peft_io.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "train/compute_dtype.h"

namespace abm {
namespace {

struct GenerateConfig {
  std::string model;
  std::string adapter;  // PEFT directory
  std::string dtype = "auto", device = "auto";
  std::string prompt;
  std::string ids;  // "1,2,3": token ids instead of a text prompt
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int threads = 0;
  bool print_ids = false;
};

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  for (const std::string& tok : split_commas(s)) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(tok, &used));
      ABM_REQUIRE(used == tok.size(), "");
    } catch (const std::exception&) {
      throw Error(cat("--ids: \"", tok, "\" is not a token id (expected e.g. --ids 1,42,7)"));
    }
  }
  return ids;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  GenerateConfig cfg;
  Options opts("generate", "Generate from a model directory (HF layout).");
  opts.add()("model", po::value(&cfg.model)->required(), "model directory (config.json + safetensors)")
      ("adapter", po::value(&cfg.adapter)->default_value(""), "LoRA adapter directory (PEFT format)")
      ("dtype", po::value(&cfg.dtype)->default_value(cfg.dtype), "compute dtype: auto (measured) | fp32 | bf16")
      ("device", po::value(&cfg.device)->default_value(cfg.device), "auto | cpu | cuda")
      ("prompt", po::value(&cfg.prompt)->default_value(""), "text prompt (needs DIR/tokenizer.model)")
      ("ids", po::value(&cfg.ids)->default_value(""), "prompt as token ids, e.g. 1,42,7 (default: BOS)")
      ("max-new-tokens", po::value(&cfg.max_new_tokens)->default_value(cfg.max_new_tokens), "tokens to generate")
      ("temperature", po::value(&cfg.temperature)->default_value(cfg.temperature), "0 = greedy")
      ("top-k", po::value(&cfg.top_k)->default_value(cfg.top_k), "sample among the k most likely (0 = off)")
      ("top-p", po::value(&cfg.top_p)->default_value(cfg.top_p), "nucleus sampling mass (1 = off)")
      ("seed", po::value(&cfg.seed)->default_value(cfg.seed), "sampling seed")
      ("threads", po::value(&cfg.threads)->default_value(0), "intra-op threads per rank (0 = cores / ranks)")
      ("print-ids", po::bool_switch(&cfg.print_ids), "print the generated token ids");
  if (!opts.parse(argc, argv)) return 0;
  opts.print_table();
  int threads = Runtime::set_threads(cfg.threads);  // before --dtype auto measures with them

  LlamaModel model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<PeftAdapter> adapter;  // stays attached to the model while generating
  std::vector<int64_t> prompt;
  Runtime::agree([&] {
    ABM_REQUIRE(cfg.max_new_tokens > 0 && cfg.max_new_tokens <= (int64_t(1) << 20),
                "--max-new-tokens must be in [1, 1048576]");
    // Logits / 1e-300 overflow to inf; below 1e-3 sampling is greedy in all but name.
    ABM_REQUIRE(cfg.temperature == 0 || (cfg.temperature >= 1e-3 && cfg.temperature <= 1e3),
                "--temperature must be 0 (greedy) or in [0.001, 1000], got ", cfg.temperature);
    ABM_REQUIRE(cfg.top_k >= 0, "--top-k must be >= 0 (0 = off), got ", cfg.top_k);
    ABM_REQUIRE(cfg.top_p > 0 && cfg.top_p <= 1, "--top-p must be in (0, 1]");
    LoadOptions lo;
    lo.device = resolve_device(cfg.device);
    lo.dtype = command_dtype("generate", cfg.dtype, cfg.model, nullptr, lo.device);
    cfg.dtype = compute_dtype_name(lo.dtype);
    model = LlamaModel::load(cfg.model, lo);
    if (!cfg.adapter.empty()) adapter = std::make_unique<PeftAdapter>(import_peft(cfg.adapter, model));
    std::string tp = tokenizer_path(cfg.model);
    if (!tp.empty()) tok = std::make_unique<Tokenizer>(tp);
    if (!cfg.ids.empty()) {
      prompt = parse_ids(cfg.ids);
    } else if (!cfg.prompt.empty()) {
      ABM_REQUIRE(tok, cfg.model, ": --prompt needs tokenizer.model in the model directory ",
                  "(or give --ids)");
      prompt = tok->encode(cfg.prompt, /*add_bos=*/true);
    } else {
      prompt = {model.config().bos_id};
    }
    for (auto id : prompt)
      ABM_REQUIRE(id >= 0 && id < model.config().vocab, "prompt token id ", id,
                  " is outside the vocabulary [0, ", model.config().vocab, ")");
  });
  log0("generate: ", cfg.model, ", ", cfg.dtype, ", ", threads, " thread(s) per rank");

  SampleOptions so;
  so.max_new_tokens = cfg.max_new_tokens;
  so.temperature = cfg.temperature;
  so.top_k = cfg.top_k;
  so.top_p = cfg.top_p;
  so.seed = cfg.seed;
  std::vector<int64_t> out = generate(model, prompt, so);
  if (Runtime::rank() == 0) {
    if (cfg.print_ids || !tok) {
      for (size_t i = 0; i < out.size(); ++i) std::cout << (i ? " " : "") << out[i];
      std::cout << "\n";
    }
    if (tok) {
      std::vector<int64_t> all = prompt;
      all.insert(all.end(), out.begin(), out.end());
      std::cout << tok->decode(all) << "\n";
    }
  }
  return 0;
}

}  // namespace abm
