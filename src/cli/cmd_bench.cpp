// abmlora bench: measured numbers printed side by side in one run — the machine's matmul
// peak per dtype and thread count, forward tokens/s and MFU against that peak, the train
// step (tokens/s, MFU, memory, with and without recomputation, next to a PyTorch eager
// reference loop), the peak RSS of loading a layer range, and all-reduce bus bandwidth
// (nccl-tests columns, MPI or NCCL backend).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "comm/allreduce_bench.h"
#include "comm/communicator.h"
#include "core/log.h"
#include "core/options.h"
#include "core/runtime.h"
#include "core/text.h"
#include "core/timer.h"
#include "model/llama_model.h"
#include "train/flops.h"
#include "train/train_bench.h"

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
  TrainBenchOptions train;  // for "train"
  std::string recompute = "off,on";
  std::string geometry = "bench";  // bench (the issue-3 model) | llama2-7b
  int train_threads = 0;
  std::string eager = "auto", python = "/usr/bin/python3";
  std::string backend = "mpi";  // for "allreduce"
  AllReduceBenchOptions allreduce;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  for (const std::string& t : split_commas(s))
    if (!t.empty()) out.push_back(t);
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

// The eager reference script next to the sources of this binary (build dirs live in the
// source tree), or "" when not found.
std::string default_eager_script() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string exe(buf, static_cast<size_t>(n));
  std::string path = exe.substr(0, exe.rfind('/')) + "/../tests/ref/eager_train_bench.py";
  return std::ifstream(path).good() ? path : "";
}

// Runs the PyTorch eager reference (tests/ref/eager_train_bench.py) on the same geometry;
// returns dtype -> tokens/s (empty on failure, with a note printed).
std::map<std::string, double> run_eager(const BenchConfig& cfg, int threads) {
  std::map<std::string, double> out;
  std::string script = cfg.eager == "auto" ? default_eager_script() : cfg.eager;
  if (script.empty() || script == "none") {
    std::printf("(eager reference skipped: %s)\n", script.empty() ? "script not found, give --eager PATH" : "--eager none");
    return out;
  }
  const TrainBenchOptions& t = cfg.train;
  // The eager loop runs the explicit dtypes ("auto" is ours: it compares with both).
  std::string dtypes = cfg.dtypes.find("auto") != std::string::npos ? "fp32,bf16" : cfg.dtypes;
  std::string cmd = cat(cfg.python, " ", script, " --dtypes ", dtypes, " --threads ", threads,
                        " --steps ", t.steps, " --warmup ", t.warmup, " --hidden ", t.hidden,
                        " --layers ", t.layers, " --heads ", t.heads, " --intermediate ",
                        t.intermediate, " --vocab ", t.vocab, " --seq ", t.seq, " --micro-batch ",
                        t.micro, " --lora-r ", t.lora_r, " --lora-alpha ", t.lora_alpha,
                        " --lora-dropout ", t.lora_dropout, " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char line[8192];
  std::string text;
  while (std::fgets(line, sizeof(line), p)) {
    text += line;
    if (line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("dtype")) out[j["dtype"]] = j["tokens_per_s"];
  }
  int status = ::pclose(p);
  if (status != 0 || out.empty())
    std::printf("(eager reference failed: %s)\n%s", cmd.c_str(), text.c_str());
  return out;
}

void bench_train_table(BenchConfig& cfg) {
  auto comm = make_mpi_communicator();
  const int threads = Runtime::set_threads(cfg.train_threads);
  TrainBenchOptions& t = cfg.train;
  ABM_REQUIRE(cfg.geometry == "bench" || cfg.geometry == "llama2-7b", "--geometry: \"",
              cfg.geometry, "\" is not bench or llama2-7b");
  if (cfg.geometry == "llama2-7b") set_llama2_7b_geometry(t);
  if (Runtime::rank() == 0) {
    std::printf("train step: %s; hidden %ld, %ld layers, %ld/%ld heads, intermediate %ld, vocab %ld; "
                "%d rank(s) x %d thread(s), micro-batch %ld x %ld tokens per rank, best of %d "
                "steps after %d warm-up\n",
                t.full ? "full-parameter" : cat("LoRA r ", t.lora_r, " on ", t.targets, ", dropout ",
                                                t.lora_dropout).c_str(),
                t.hidden, t.layers, t.heads, t.kv_heads, t.intermediate, t.vocab, comm->size(),
                threads, t.micro, t.seq, t.steps, t.warmup);
    std::printf("%-9s %-9s %-9s %10s %10s %8s %6s %10s %10s\n", "dtype", "backprop", "recompute",
                "tokens/s", "(median)", "step s", "MFU", "peak GF/s", "step MiB");
    std::fflush(stdout);
  }
  std::map<std::string, double> ours;  // dtype -> best tokens/s without recomputation
  for (auto& ds : split(cfg.dtypes)) {
    for (auto& rc : split(cfg.recompute)) {
      ABM_REQUIRE(rc == "on" || rc == "off", "--recompute: a list of on/off");
      t.dtype = ds;
      t.recompute = rc == "on";
      TrainBenchResult r = bench_train(t, *comm);
      if (!t.recompute) ours[r.dtype] = std::max(ours[r.dtype], r.tokens_per_s);
      const std::string label = ds == "auto" ? "auto:" + r.dtype : ds;
      if (Runtime::rank() == 0) {
        std::printf("%-9s %-9s %-9s %10.1f %10.1f %8.3f %5.1f%% %10.1f %10.1f\n", label.c_str(),
                    t.backprop.c_str(), rc.c_str(), r.tokens_per_s, r.median_tokens_per_s,
                    r.best_step_s, 100 * r.mfu, r.peak_gflops, r.step_tensor_mib);
        if (r.device_peak_mib > 0)
          std::printf("    device peak %.0f MiB; forward %.3f s, backward + optimizer %.3f s of the step\n",
                      r.device_peak_mib, r.forward_s, r.best_step_s - r.forward_s);
        if (t.profile) {
          double total = 0;
          for (auto& [name, sec] : r.profile) total += sec;
          for (auto& [name, sec] : r.profile)
            std::printf("    %-28s %8.3f s  %5.1f%%\n", name.c_str(), sec, 100 * sec / total);
          std::printf("    %-28s %8.0f per step\n", "page faults", r.minor_faults);
        }
      }
      std::fflush(stdout);
    }
  }
  if (comm->size() > 1 || Runtime::rank() != 0 || t.full || t.device != "cpu") return;
  auto eager = run_eager(cfg, threads);
  for (auto& [ds, tps] : eager) {
    if (!ours.count(ds)) continue;
    std::printf("eager PyTorch %-5s %10.1f tokens/s   abmlora / eager = %.2fx\n", ds.c_str(), tps,
                ours[ds] / tps);
  }
  std::fflush(stdout);
}

void bench_allreduce(const BenchConfig& cfg) {
  std::unique_ptr<AllReduceTarget> target;
  if (cfg.backend == "mpi") {
    target = make_mpi_allreduce_target();
  } else if (cfg.backend == "nccl") {
#ifdef ABM_WITH_NCCL
    target = make_nccl_allreduce_target();
#else
    ABM_REQUIRE(false, "--backend nccl: this abmlora was built without CUDA (configure with "
                "-DABM_CUDA=ON on a machine with the CUDA toolkit)");
#endif
  } else {
    ABM_REQUIRE(false, "--backend: \"", cfg.backend, "\" is not mpi or nccl");
  }
  auto rows = run_allreduce_bench(*target, cfg.allreduce);
  if (target->rank() == 0)
    std::printf("%s", allreduce_table(rows, target->size(), target->name()).c_str());
  std::fflush(stdout);
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  BenchConfig cfg;
  Options opts("bench", "Measure matmul peak, forward and train-step throughput/MFU, and memory.");
  opts.add()("what", po::value(&cfg.what)->default_value(cfg.what), "matmul,forward,train,load,allreduce")
      ("dtypes", po::value(&cfg.dtypes)->default_value(cfg.dtypes), "fp32,bf16,auto (train: auto = what --dtype auto picks)")
      ("threads", po::value(&cfg.threads)->default_value(cfg.threads), "thread counts to try")
      ("matmul-n", po::value(&cfg.matmul_n)->default_value(cfg.matmul_n), "square matmul size")
      ("hidden", po::value(&cfg.hidden)->default_value(cfg.hidden), "forward model hidden size")
      ("layers", po::value(&cfg.layers)->default_value(cfg.layers), "forward model layers")
      ("seq", po::value(&cfg.seq)->default_value(cfg.seq), "forward sequence length")
      ("vocab", po::value(&cfg.vocab)->default_value(cfg.vocab), "forward model vocabulary")
      ("reps", po::value(&cfg.reps)->default_value(cfg.reps), "timed repetitions (best is kept)")
      ("model", po::value(&cfg.model)->default_value(""), "model directory for 'load'")
      ("first", po::value(&cfg.first)->default_value(0), "first layer for 'load'")
      ("last", po::value(&cfg.last)->default_value(-1), "end layer for 'load' (-1 = all)")
      ("train-hidden", po::value(&cfg.train.hidden)->default_value(cfg.train.hidden), "train: hidden size")
      ("train-layers", po::value(&cfg.train.layers)->default_value(cfg.train.layers), "train: layers")
      ("train-heads", po::value(&cfg.train.heads)->default_value(cfg.train.heads), "train: attention heads")
      ("train-kv-heads", po::value(&cfg.train.kv_heads)->default_value(cfg.train.kv_heads), "train: kv heads")
      ("train-intermediate", po::value(&cfg.train.intermediate)->default_value(cfg.train.intermediate), "train: MLP size")
      ("train-vocab", po::value(&cfg.train.vocab)->default_value(cfg.train.vocab), "train: vocabulary")
      ("train-seq", po::value(&cfg.train.seq)->default_value(cfg.train.seq), "train: tokens per sequence")
      ("micro-batch", po::value(&cfg.train.micro)->default_value(cfg.train.micro), "train: sequences per rank per step")
      ("lora-r", po::value(&cfg.train.lora_r)->default_value(cfg.train.lora_r), "train: LoRA rank")
      ("lora-targets", po::value(&cfg.train.targets)->default_value(cfg.train.targets), "train: LoRA targets")
      ("lora-dropout", po::value(&cfg.train.lora_dropout)->default_value(cfg.train.lora_dropout), "train: LoRA dropout")
      ("full", po::bool_switch(&cfg.train.full), "train: full-parameter training instead of LoRA")
      ("backprop", po::value(&cfg.train.backprop)->default_value(cfg.train.backprop), "train: manual | autograd")
      ("device", po::value(&cfg.train.device)->default_value(cfg.train.device), "train: cpu | cuda | auto")
      ("geometry", po::value(&cfg.geometry)->default_value(cfg.geometry), "train: bench | llama2-7b (r 16, 2 x 2048 tokens)")
      ("recompute", po::value(&cfg.recompute)->default_value(cfg.recompute), "train: off,on")
      ("steps", po::value(&cfg.train.steps)->default_value(cfg.train.steps), "train: timed steps")
      ("warmup", po::value(&cfg.train.warmup)->default_value(cfg.train.warmup), "train: untimed steps first")
      ("train-threads", po::value(&cfg.train_threads)->default_value(0), "train: threads per rank (0 = cores / ranks)")
      ("eager", po::value(&cfg.eager)->default_value(cfg.eager), "train: eager reference script (auto | none | PATH)")
      ("python", po::value(&cfg.python)->default_value(cfg.python), "train: interpreter with torch for --eager")
      ("profile", po::bool_switch(&cfg.train.profile), "train: time the parts of the step")
      ("attn-block", po::value(&cfg.train.attn_block)->default_value(0), "train: attention tile rows (0 = default)")
      ("backend", po::value(&cfg.backend)->default_value(cfg.backend), "allreduce: mpi | nccl")
      ("min-bytes", po::value(&cfg.allreduce.min_bytes)->default_value(cfg.allreduce.min_bytes), "allreduce: smallest message")
      ("max-bytes", po::value(&cfg.allreduce.max_bytes)->default_value(cfg.allreduce.max_bytes), "allreduce: largest message")
      ("step-factor", po::value(&cfg.allreduce.step_factor)->default_value(cfg.allreduce.step_factor), "allreduce: size multiplier between rows")
      ("iters", po::value(&cfg.allreduce.iters)->default_value(cfg.allreduce.iters), "allreduce: timed iterations per size (0 = adaptive)");
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
  if (has("train")) bench_train_table(cfg);
  if (has("allreduce")) bench_allreduce(cfg);
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
