// abmlora inspect PATH: what a model directory holds — config, parameters, dtypes, and
// per-layer sizes — read from the safetensors headers only (no weights are loaded); or what
// a checkpoint (CKPT.h5, a checkpoint directory, a run directory) holds and whether it
// verifies (checkpoints/inspect.h).
#include <sys/stat.h>

#include <cstdio>
#include <map>

#include "checkpoints/checkpoint_dir.h"
#include "checkpoints/inspect.h"

#include "cli/commands.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "model/llama_config.h"
#include "model/safetensors.h"

namespace abm {
namespace {

// "model.layers.12.mlp.up_proj.weight" -> "layer 12"; others by role.
std::string group_of(const std::string& name) {
  const std::string pre = "model.layers.";
  if (name.rfind(pre, 0) == 0) {
    size_t dot = name.find('.', pre.size());
    const std::string idx = name.substr(pre.size(), dot - pre.size());
    // A stray name such as model.layers.x.foo is shown as its own group, not parsed.
    if (idx.empty() || idx.size() > 9 || idx.find_first_not_of("0123456789") != std::string::npos)
      return "model.layers." + idx;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "layer %03d", std::stoi(idx));
    return buf;
  }
  if (name == "model.embed_tokens.weight") return "embed_tokens";
  if (name == "lm_head.weight") return "lm_head";
  return "norm";
}

bool exists(const std::string& p, bool dir) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

// A checkpoint file, a directory of checkpoints, or a run directory (RUN/checkpoints):
// the checkpoint report, or "" when `path` is none of these (then it is a model directory).
std::string checkpoint_target(const std::string& path) {
  if (exists(path, false) && path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0)
    return path;
  if (!exists(path, true) || exists(path + "/config.json", false)) return "";
  if (!list_checkpoints(path).empty() || exists(path + "/latest", false)) return path;
  if (exists(path + "/checkpoints", true)) return path + "/checkpoints";
  return "";
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  struct {
    std::string path;
    bool verbose = false;
  } cfg;
  Options opts("inspect",
               "Show what a model directory or a checkpoint holds.\n"
               "Usage: abmlora inspect MODEL_DIR | CKPT.h5 | RUN_DIR[/checkpoints]\n"
               "For checkpoints: exit status 0 when the file (or some file of the directory)\n"
               "verifies, 1 when not.");
  opts.add()("path", po::value(&cfg.path)->required(), "model directory, checkpoint or run directory")
      ("verbose", po::bool_switch(&cfg.verbose), "checkpoint: list every module and the resolved config");
  opts.positional("path");
  if (!opts.parse(argc, argv)) return 0;

  const std::string ckpt = checkpoint_target(cfg.path);
  if (!ckpt.empty()) {
    if (Runtime::rank() != 0) return 0;
    Inspection r = exists(ckpt, true) ? inspect_checkpoint_dir(ckpt) : inspect_checkpoint(ckpt, cfg.verbose);
    std::fputs(r.text.c_str(), stdout);
    return r.verifies ? 0 : 1;
  }

  LlamaConfig c;
  std::unique_ptr<TensorStore> store;
  Runtime::agree([&] {  // a bad directory is reported once, whatever the rank count
    require_dir(cfg.path, "model");
    c = LlamaConfig::load(cfg.path + "/config.json");
    store = std::make_unique<TensorStore>(cfg.path);
  });
  struct Sum {
    int64_t params = 0, bytes = 0;
    std::map<std::string, int> dtypes;
  };
  std::map<std::string, Sum> groups;
  Sum total;
  for (auto& n : store->names()) {
    int64_t numel = 1;
    for (auto d : store->shape(n)) numel *= d;
    std::string dt = store->dtype(n);
    int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(dtype_from_name(dt)));
    for (Sum* s : {&groups[group_of(n)], &total}) {
      s->params += numel;
      s->bytes += bytes;
      s->dtypes[dt]++;
    }
  }
  if (Runtime::rank() != 0) return 0;
  std::printf("model: %s\n", cfg.path.c_str());
  std::printf("  hidden %ld, intermediate %ld, layers %ld, heads %ld (kv %ld, head_dim %ld), "
              "vocab %ld\n", c.hidden, c.intermediate, c.layers, c.heads, c.kv_heads, c.head_dim,
              c.vocab);
  std::printf("  rope_theta %g, rope linear factor %g, rms_norm_eps %g, max positions %ld, %s head\n",
              c.rope_theta, c.rope_linear_factor, c.rms_eps, c.max_positions,
              c.tie_embeddings ? "tied" : "untied");
  std::string dts;
  for (auto& [k, v] : total.dtypes) dts += (dts.empty() ? "" : ", ") + k + " x" + std::to_string(v);
  std::printf("  parameters %ld (%.3f M), stored %s, dtypes: %s\n", total.params,
              total.params / 1e6, human_bytes(total.bytes).c_str(), dts.c_str());
  std::printf("  %-14s %14s %12s\n", "part", "parameters", "bytes");
  for (auto& [g, s] : groups)
    std::printf("  %-14s %14ld %12s\n", g.c_str(), s.params, human_bytes(s.bytes).c_str());
  return 0;
}

}  // namespace abm
