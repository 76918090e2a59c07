// The optimizer step frozen as fixtures: small seeded runs of the three objectives — the
// trainer (LM loss), one-stage ABM (boundary loss, data parallel) and pipelined ABM (2
// stages, global and shard scope) — on 2 real MPI ranks, their adapters and loss curves
// recorded in tests/fixtures/step_engine/ before the three optimizer loops became one step
// engine (src/optim). Every later build must reproduce them bit for bit.
//
// Bits depend on the CPU (MKL and ATen pick kernels by instruction set), so the fixtures
// record the machine they were made on (cpu.txt): there the comparison is bitwise; on
// another CPU it is within 1e-3 of each tensor's largest value (AdamW turns last-bit noise
// in near-zero gradients into lr-sized steps) and the test says so.
//
// ABM_RECORD_STEP_FIXTURES=1 rewrites the fixtures from this build.
#include <gtest/gtest.h>

#include <ATen/Version.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "model/safetensors.h"
#include "test_util.h"

using namespace abm;
using namespace abm::test;

namespace {

const std::string kFixtures = std::string(ABM_SOURCE_DIR) + "/tests/fixtures/step_engine";
const std::string kModel = std::string(ABM_SOURCE_DIR) + "/models/default";

// 32 pre-tokenized rows of 10..40 tokens over the default model's vocabulary.
void write_rows(const std::string& path) {
  std::ofstream out(path);
  for (int i = 0; i < 32; ++i) {
    std::vector<int64_t> ids = {1};
    for (int j = 1; j < 10 + (i * 7) % 31; ++j) ids.push_back(3 + (i * 131 + j * 37) % 2040);
    out << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
  }
}

// What decides the bits: the CPU model and ATen's kernel level.
std::string cpu_signature() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown";
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return model + " / ATen " + at::get_cpu_capability();
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct FixtureRun {
  std::string name, command;
  std::vector<double> curve;  // loss per step, as the run wrote it
  std::string adapter;        // adapter_model.safetensors
};

std::vector<double> curve_of(const std::string& out, bool abm) {
  std::vector<double> c;
  if (abm) {
    const nlohmann::json j = read_json_file(out + "/abm.json");
    for (double x : j["loss"]) c.push_back(x);
  } else {
    for (const auto& r : read_jsonl(out + "/metrics.jsonl"))
      if (r.contains("loss")) c.push_back(r["loss"].get<double>());
  }
  return c;
}

class StepEngineFixtures : public ::testing::Test {
 protected:
  TempDir tmp;
  void SetUp() override { write_rows(tmp / "rows.jsonl"); }

  FixtureRun run_one(const std::string& name, const std::string& args) {
    const bool abm = args.rfind("abm-init", 0) == 0;
    FixtureRun r{name, "mpirun --oversubscribe -np 2 " + std::string(ABM_BINARY) + " " + args +
                    " --model " + kModel + " --data " + (tmp / "rows.jsonl") + " --out " +
                    (tmp / name) + " --lora-targets all-linear --lora-r 2 --lora-dropout 0.1" +
                    " --threads 1"};
    RunResult res = run(r.command);
    EXPECT_EQ(res.status, 0) << r.command << "\n" << res.output;
    r.curve = curve_of(tmp / name, abm);
    r.adapter = tmp / (name + "/adapter/adapter_model.safetensors");
    return r;
  }

  void check(const FixtureRun& r) {
    SCOPED_TRACE(r.name + ": " + r.command);
    ASSERT_FALSE(r.curve.empty()) << "no loss curve";
    const std::string dir = kFixtures + "/" + r.name;
    if (std::getenv("ABM_RECORD_STEP_FIXTURES")) {
      ASSERT_EQ(run("mkdir -p " + dir + " && cp " + r.adapter + " " + dir + "/").status, 0);
      std::ofstream(dir + "/curve.json") << nlohmann::json(r.curve).dump() << "\n";
      std::ofstream(kFixtures + "/cpu.txt") << cpu_signature() << "\n";
      return;
    }
    const bool same_cpu = read_text(kFixtures + "/cpu.txt") == cpu_signature() + "\n";
    if (!same_cpu)
      std::printf("%s: fixtures made on another CPU (%s): comparing within 1e-3, not bitwise\n",
                  r.name.c_str(), read_text(kFixtures + "/cpu.txt").c_str());
    std::vector<double> want;
    const nlohmann::json w = read_json_file(dir + "/curve.json");
    for (double x : w) want.push_back(x);
    ASSERT_EQ(r.curve.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      if (same_cpu) EXPECT_EQ(r.curve[i], want[i]) << "loss of step " << i + 1;
      else EXPECT_NEAR(r.curve[i], want[i], 1e-3 * std::abs(want[i])) << "loss of step " << i + 1;
    }
    SafetensorsFile got(r.adapter), ref(dir + "/adapter_model.safetensors");
    ASSERT_EQ(got.names(), ref.names());
    bool trained = false;
    for (const std::string& n : ref.names()) {
      at::Tensor a = got.read(n, at::kFloat), b = ref.read(n, at::kFloat);
      if (n.find("lora_B") != std::string::npos) trained |= b.abs().max().item<double>() > 0;
      if (same_cpu) EXPECT_TRUE(at::equal(a, b)) << n;
      else EXPECT_LE(max_abs_diff(a, b), 1e-3 * b.abs().max().item<double>()) << n;
    }
    EXPECT_TRUE(trained) << "every B is 0: the fixture would prove nothing";
  }
};

TEST_F(StepEngineFixtures, TrainerLmLoss) {
  check(run_one("train", "train --steps 3 --global-batch 4 --lr 5e-3 --warmup 1 --seed 3 --clip 1.0"));
}

TEST_F(StepEngineFixtures, OneStageAbm) {
  check(run_one("abm1", "abm-init --abm-stages 1 --abm-samples 8 --abm-steps 4 --abm-batch 2 "
                        "--abm-lr 1e-2 --seed 5"));
}

TEST_F(StepEngineFixtures, PipelinedAbmGlobalAndShard) {
  const std::string a = "abm-init --abm-stages 2 --abm-samples 8 --abm-steps 4 --abm-batch 2 "
                        "--abm-lr 1e-2 --seed 5 --abm-layers all";
  check(run_one("abm2_global", a + " --abm-scope global"));
  check(run_one("abm2_shard", a + " --abm-scope shard"));
}

}  // namespace
