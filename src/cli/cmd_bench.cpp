// abmlora bench: measured numbers printed side by side in one run — the machine's matmul
// peak per dtype and thread count, forward tokens/s and MFU against that peak, and the
// peak RSS of loading a layer range.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "core/log.h"
#include "core/options.h"
#include "core/timer.h"
#include "model/llama_model.h"
#include "train/flops.h"

namespace abm {
namespace {

struct BenchConfig {
  std::string what = "matmul,forward";
  std::string dtypes = "fp32,bf16";
  std::string threads = "1,2";
  int64_t matmul_n = 2048;
  int64_t hidden = 1024, layers = 8, seq = 512, vocab = 32000;
  int reps = 2;
  std::string model;  // for "load"
  int64_t first = 0, last = -1;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ',')) if (!t.empty()) out.push_back(t);
  return out;
}

// Best-of-reps time of f() after one warm-up call.
template <typename F>
double best_time(int reps, F&& f) {
  f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    Timer t;
    f();
    best = std::min(best, t.seconds());
  }
  return best;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  BenchConfig cfg;
  Options opts("bench", "Measure matmul peak, forward throughput/MFU, and load memory.");
  opts.add()("what", po::value(&cfg.what)->default_value(cfg.what), "matmul,forward,load")
      ("dtypes", po::value(&cfg.dtypes)->default_value(cfg.dtypes), "fp32,bf16")
      ("threads", po::value(&cfg.threads)->default_value(cfg.threads), "thread counts to try")
      ("matmul-n", po::value(&cfg.matmul_n)->default_value(cfg.matmul_n), "square matmul size")
      ("hidden", po::value(&cfg.hidden)->default_value(cfg.hidden), "forward model hidden size")
      ("layers", po::value(&cfg.layers)->default_value(cfg.layers), "forward model layers")
      ("seq", po::value(&cfg.seq)->default_value(cfg.seq), "forward sequence length")
      ("vocab", po::value(&cfg.vocab)->default_value(cfg.vocab), "forward model vocabulary")
      ("reps", po::value(&cfg.reps)->default_value(cfg.reps), "timed repetitions (best is kept)")
      ("model", po::value(&cfg.model)->default_value(""), "model directory for 'load'")
      ("first", po::value(&cfg.first)->default_value(0), "first layer for 'load'")
      ("last", po::value(&cfg.last)->default_value(-1), "end layer for 'load' (-1 = all)");
  if (!opts.parse(argc, argv)) return 0;
  auto what = split(cfg.what);
  auto has = [&](const char* w) { return std::find(what.begin(), what.end(), w) != what.end(); };
  at::NoGradGuard no_grad;

  if (has("matmul") || has("forward")) {
    std::printf("%-6s %-7s %14s %14s %12s %8s\n", "dtype", "threads", "matmul GFLOP/s",
                "fwd tokens/s", "fwd GFLOP/s", "MFU");
    for (auto& ds : split(cfg.dtypes)) {
      at::ScalarType dt = parse_dtype(ds, "--dtypes");
      LlamaConfig c;
      c.hidden = cfg.hidden;
      c.intermediate = cfg.hidden * 11 / 4;
      c.layers = cfg.layers;
      c.heads = cfg.hidden / 64;
      c.kv_heads = c.heads;
      c.head_dim = 64;
      c.vocab = cfg.vocab;
      c.max_positions = cfg.seq;
      std::unique_ptr<LlamaModel> m;
      if (has("forward")) m = std::make_unique<LlamaModel>(LlamaModel::random(c, 0, dt));
      for (auto& ts : split(cfg.threads)) {
        int th = Runtime::set_threads(std::stoi(ts));
        double peak = matmul_peak_gflops(cfg.matmul_n, dt, cfg.reps);
        double tps = 0, fl = 0;
        if (m) {
          at::Tensor ids = at::randint(c.vocab, {1, cfg.seq}, at::kLong);
          double s = best_time(cfg.reps, [&] { m->forward(ids); });
          tps = cfg.seq / s;
          fl = tps * forward_flops_per_token(c, cfg.seq) / 1e9;
        }
        std::printf("%-6s %-7d %14.1f %14.1f %12.1f %7.1f%%\n", ds.c_str(), th, peak, tps, fl,
                    m ? 100.0 * fl / peak : 0.0);
        std::fflush(stdout);
      }
    }
  }
  if (has("load")) {
    ABM_REQUIRE(!cfg.model.empty(), "bench --what load needs --model DIR");
    LoadOptions lo;
    lo.first = cfg.first;
    lo.last = cfg.last;
    Timer t;
    LlamaModel m = LlamaModel::load(cfg.model, lo);
    int64_t bytes = 0;
    for (auto& [n, w] : m.named_weights()) bytes += w.numel() * w.element_size();
    std::printf("load %s layers [%ld, %ld): %.1f MiB of weights, peak RSS %.1f MiB, %.2f s\n",
                cfg.model.c_str(), m.first(), m.last(), bytes / 1048576.0,
                peak_rss_bytes() / 1048576.0, t.seconds());
  }
  return 0;
}

}  // namespace abm
