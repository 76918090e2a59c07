// The trainer's pieces against torch (AdamW, clipping, schedule) and the whole
// `abmlora train` under real mpirun: 2 ranks equal 1 rank with accumulation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "test_util.h"
#include "optim/adamw.h"
#include "optim/grad_buffer.h"
#include "optim/lr_schedule.h"
#include "core/check.h"
#include "train/compute_dtype.h"

using namespace abm;
using namespace abm::test;

TEST(Train, AdamWAndClipMatchTorch) {
  TempDir tmp;
  at::manual_seed(3);
  std::vector<at::Tensor> p = {at::randn({4, 5}).requires_grad_(true),
                               at::randn({7}).requires_grad_(true)};
  NamedTensors in = {{"p0", p[0].detach().clone()}, {"p1", p[1].detach().clone()}};
  const int steps = 5;
  std::vector<std::vector<at::Tensor>> g(steps);
  for (int s = 0; s < steps; ++s) {
    g[s] = {at::randn({4, 5}), at::randn({7}) * 3};
    in.push_back({"g0_" + std::to_string(s), g[s][0]});
    in.push_back({"g1_" + std::to_string(s), g[s][1]});
  }
  save_safetensors(tmp / "in.safetensors", in);
  oracle("adamw_ref.py " + (tmp / "in.safetensors") + " " + (tmp / "out.safetensors") +
         " --lr 0.01 --wd 0.1 --steps 5 --clip 0.5");

  AdamWOptions o;
  o.weight_decay = 0.1;
  AdamW opt(p, o);
  GradBuffer buf(p);
  for (int s = 0; s < steps; ++s) {
    p[0].mutable_grad() = g[s][0].clone();
    p[1].mutable_grad() = g[s][1].clone();
    buf.gather();
    buf.clip(0.5);
    buf.scatter();
    opt.step(0.01);
  }
  SafetensorsFile ref(tmp / "out.safetensors");
  for (int i = 0; i < 2; ++i) {
    std::string k = std::to_string(i);
    EXPECT_LE(max_abs_diff(p[i], ref.read("p" + k, at::kFloat)), 1e-6);
    EXPECT_LE(max_abs_diff(opt.exp_avg()[i], ref.read("m" + k, at::kFloat)), 1e-6);
    EXPECT_LE(max_abs_diff(opt.exp_avg_sq()[i], ref.read("v" + k, at::kFloat)), 1e-6);
  }
}

TEST(Train, CosineScheduleWithWarmup) {
  LrSchedule s;
  s.peak = 1.0;
  s.warmup = 4;
  s.total = 14;
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(9), 0.5, 1e-12);   // halfway through the decay
  EXPECT_NEAR(s.at(14), 0.0, 1e-12);
  s.min_ratio = 0.1;
  EXPECT_NEAR(s.at(14), 0.1, 1e-12);
}

namespace {

// A tiny model and pre-tokenized data: one learnable sequence cut at varied lengths (so
// padding and token weighting matter), deterministic.
void make_fixture(const TempDir& tmp) {
  oracle("make_tiny_model.py " + (tmp / "model"));
  std::ofstream out(tmp / "data.jsonl");
  for (int i = 0; i < 48; ++i) {
    int n = 6 + i % 11;
    nlohmann::json ids = nlohmann::json::array();
    ids.push_back(1);
    for (int j = 1; j < n; ++j) ids.push_back(3 + (j * 7) % 90);
    out << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
  }
}

std::vector<double> losses(const std::string& metrics) {
  std::vector<double> v;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line)["loss"]);
  return v;
}

RunResult train(const TempDir& tmp, int ranks, int micro, const std::string& out,
                const std::string& extra = "") {
  std::string cmd = "mpirun --oversubscribe -np " + std::to_string(ranks) + " " + ABM_BINARY +
                    " train --model " + (tmp / "model") + " --data " + (tmp / "data.jsonl") +
                    " --out " + (tmp / out) + " --global-batch 8 --micro-batch " +
                    std::to_string(micro) + " --steps 6 --lr 5e-3 --warmup 2 --seed 11" +
                    " --lora-targets all-linear --lora-r 4 --threads 1 " + extra;
  RunResult r = run(cmd);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
  return r;
}

}  // namespace

// docs/design.md §5: the same global batch on 1 rank (accumulation 2) and on 2 ranks gives the same
// loss trajectory and the same final adapter (fp32), with LoRA dropout on.
TEST(Train, TwoRanksEqualOneRankWithAccumulation) {
  TempDir tmp;
  make_fixture(tmp);
  train(tmp, 1, 4, "one", "--lora-dropout 0.1");
  train(tmp, 2, 4, "two", "--lora-dropout 0.1");
  auto a = losses(tmp / "one/metrics.jsonl"), b = losses(tmp / "two/metrics.jsonl");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LE(std::abs(a[i] - b[i]) / a[i], 1e-5) << i;
  EXPECT_LT(a.back(), a.front());  // it learns
  SafetensorsFile fa(tmp / "one/adapter/adapter_model.safetensors");
  SafetensorsFile fb(tmp / "two/adapter/adapter_model.safetensors");
  ASSERT_EQ(fa.names(), fb.names());
  for (auto& n : fa.names()) {
    at::Tensor x = fa.read(n, at::kFloat), y = fb.read(n, at::kFloat);
    EXPECT_LE(max_abs_diff(x, y), 1e-5 * (1 + x.abs().max().item<double>())) << n;
  }
}

TEST(Train, BadGlobalBatchListsValidValues) {
  TempDir tmp;
  make_fixture(tmp);
  std::string cmd = "mpirun --oversubscribe -np 2 " + std::string(ABM_BINARY) + " train --model " +
                    (tmp / "model") + " --data " + (tmp / "data.jsonl") + " --out " + (tmp / "x") +
                    " --global-batch 6 --micro-batch 4 --steps 1";
  RunResult r = run(cmd);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("global"), std::string::npos) << r.output;
}

// --dtype auto: bf16 exactly when its measured matmul throughput is >= 1.5x fp32's; the
// figures come from ABM_MATMUL_GFLOPS here, so the test does not depend on this CPU.
TEST(Train, DtypeAutoPicksBf16WhereItIsMeasuredFaster) {
  EXPECT_EQ(abm::pick_faster_dtype(100, 150), at::kBFloat16);
  EXPECT_EQ(abm::pick_faster_dtype(100, 149.9), at::kFloat);
  EXPECT_EQ(abm::pick_faster_dtype(100, 4), at::kFloat);  // emulated bf16 (AVX2 only)
  abm::LlamaConfig c;
  c.hidden = 4096;
  c.intermediate = 11008;
  const char* env = std::getenv("ABM_MATMUL_GFLOPS");
  const std::string saved = env ? env : "";
  setenv("ABM_MATMUL_GFLOPS", "fp32=111,bf16=916", 1);  // an AMX Xeon core
  abm::DtypeChoice d = abm::resolve_compute_dtype("auto", c, nullptr);
  EXPECT_EQ(d.dtype, at::kBFloat16);
  EXPECT_EQ(d.fp32_gflops, 111);
  EXPECT_NE(d.why.find("bf16 (--dtype auto: bf16 matmul 916 GFLOP/s vs fp32 111 at [256x1024]x[1024x1024]"),
            std::string::npos) << d.why;
  setenv("ABM_MATMUL_GFLOPS", "fp32=120,bf16=160", 1);
  EXPECT_EQ(abm::resolve_compute_dtype("auto", c, nullptr).dtype, at::kFloat);
  // A forced dtype is not measured.
  d = abm::resolve_compute_dtype("bf16", c, nullptr);
  EXPECT_EQ(d.dtype, at::kBFloat16);
  EXPECT_EQ(d.fp32_gflops, 0);
  EXPECT_THROW(abm::resolve_compute_dtype("fp16", c, nullptr), abm::Error);
  setenv("ABM_MATMUL_GFLOPS", "fp32=1", 1);
  EXPECT_THROW(abm::resolve_compute_dtype("auto", c, nullptr), abm::Error);
  // Unset: really measured, both figures positive.
  unsetenv("ABM_MATMUL_GFLOPS");
  c.hidden = 64;
  c.intermediate = 128;
  d = abm::resolve_compute_dtype("auto", c, nullptr);
  EXPECT_GT(d.fp32_gflops, 0);
  EXPECT_GT(d.bf16_gflops, 0);
  EXPECT_NE(d.why.find(", measured, "), std::string::npos) << d.why;
  if (!saved.empty()) setenv("ABM_MATMUL_GFLOPS", saved.c_str(), 1);
}
