// ABM over pipeline stages (src/abm/abm_pipeline.h) under real mpirun, one stage per rank:
// - global scope on 2 and 3 stages equals the one-stage ABM (<= 1e-5 relative), also
//   with per-layer recomputation (--abm-recompute);
// - 2 stages x 2 replicas (4 ranks) equal one replica per stage, in both scopes;
// - with one stage the scope flag changes nothing;
// - shard scope on 2 stages equals, stage by stage, a one-process AbmTrainer over that
//   stage's layers fed the teacher's hidden states at its input (built here from the
//   library's pieces, with the representative rows taken from the data file itself);
// - abm-init on S stages loads only each stage's layers and still equals one stage;
// - every rank ends with the same adapters, and the representative batch comes from rank 0
//   even when the ranks read differently ordered data files;
// - a stage killed mid-pipeline ends the job (no hang).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "abm/abm_trainer.h"
#include "abm/teacher.h"
#include "abm_fixture.h"
#include "comm/local_communicator.h"
#include "model/safetensors.h"
#include "sharding/partition_planner.h"

using namespace abm;
using namespace abm::test;

namespace {

const std::string kArgs =
    " --abm-steps 5 --abm-lr 1e-2 --abm-batch 2 --lora-dropout 0.1 --abm-layers all";

std::string key(const std::string& module, const char* ab) {
  return "base_model.model." + module + ".lora_" + ab + ".weight";
}

// Largest |a - b| over the largest |a| of each tensor of two PEFT adapters (same keys).
double max_rel_diff(const std::string& a_dir, const std::string& b_dir) {
  SafetensorsFile a(a_dir + "/adapter_model.safetensors"), b(b_dir + "/adapter_model.safetensors");
  double worst = 0;
  for (const std::string& name : a.names()) {
    at::Tensor x = a.read(name, at::kFloat), y = b.read(name, at::kFloat);
    const double scale = std::max(x.abs().max().item<double>(), 1e-12);
    worst = std::max(worst, (x - y).abs().max().item<double>() / scale);
  }
  return worst;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(AbmPipeline, GlobalScopeOnTwoAndThreeStagesEqualsOneStage) {
  TempDir tmp;
  make_abm_fixture(tmp);
  abm_init(tmp, 1, "one", kArgs + " --abm-scope global");
  for (int stages : {2, 3}) {
    const std::string out = "s" + std::to_string(stages);
    RunResult r = abm_init(tmp, stages, out, kArgs + " --abm-scope global");
    // abm-init loads only each stage's layers (training's ABM runs on a full replica).
    EXPECT_NE(r.output.find("] abm-init: this rank loaded layers [0, "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(", 3) of 3 + norm and head"), std::string::npos) << r.output;
    const double d = max_rel_diff(tmp / "one/adapter", tmp / (out + "/adapter"));
    std::printf("global scope, %d stages vs 1: max relative difference %.3g\n", stages, d);
    EXPECT_LE(d, 1e-5);
    nlohmann::json a = read_json(tmp / "one/abm.json"), b = read_json(tmp / (out + "/abm.json"));
    EXPECT_EQ(a["indices"], b["indices"]);
    ASSERT_EQ(a["loss"].size(), b["loss"].size());
    for (size_t s = 0; s < a["loss"].size(); ++s)
      EXPECT_NEAR(a["loss"][s].get<double>(), b["loss"][s].get<double>(),
                  1e-5 * std::abs(a["loss"][s].get<double>())) << s;
    EXPECT_EQ(a["accuracy_after"].size(), b["accuracy_after"].size());
    // The stages take the "before" report from the teacher pass (B = 0: student ==
    // teacher); the one-stage run measures the student in a pass of its own.
    EXPECT_EQ(a["accuracy_before"], b["accuracy_before"]);
    EXPECT_EQ(a["violation_before"], b["violation_before"]);
    EXPECT_NEAR(a["loss_before"].get<double>(), b["loss_before"].get<double>(),
                1e-12 * a["loss_before"].get<double>());
  }
  // Per-layer recomputation (dropout on: the masks must repeat) gives the same adapter.
  abm_init(tmp, 2, "recompute", kArgs + " --abm-scope global --abm-recompute");
  const double d = max_rel_diff(tmp / "one/adapter", tmp / "recompute/adapter");
  std::printf("global scope, 2 stages with --abm-recompute vs 1: max relative difference %.3g\n", d);
  EXPECT_LE(d, 1e-5);
  // ABM moved the adapter: a gate_proj B is no longer zero.
  SafetensorsFile f(tmp / "one/adapter/adapter_model.safetensors");
  EXPECT_GT(f.read(key("model.layers.0.mlp.gate_proj", "B"), at::kFloat).abs().max().item<double>(), 0.0);
}

// 4 ranks = 2 stages x 2 replicas: each replica's pipeline takes half of every step's
// samples and the replicas of a stage sum their gradients, so global scope still equals
// one stage, and shard scope equals shard on 2 stages of one rank each.
TEST(AbmPipeline, ReplicatedStagesEqualOneReplica) {
  TempDir tmp;
  make_abm_fixture(tmp);
  abm_init(tmp, 1, "one", kArgs + " --abm-scope global");
  abm_init(tmp, 2, "shard2", kArgs + " --abm-scope shard");
  for (const char* scope : {"global", "shard"}) {
    const std::string out = std::string("x2_") + scope;
    RunResult r = abm_init(tmp, 4, out, kArgs + " --abm-stages 2 --abm-scope " + scope);
    EXPECT_NE(r.output.find("abm: stage plan (2 replicas per stage)"), std::string::npos) << r.output;
    const std::string ref = std::string(scope) == "global" ? "one" : "shard2";
    const double d = max_rel_diff(tmp / (ref + "/adapter"), tmp / (out + "/adapter"));
    std::printf("%s scope, 2 stages x 2 replicas vs %s: max relative difference %.3g\n", scope,
                ref.c_str(), d);
    EXPECT_LE(d, 1e-5);
    nlohmann::json a = read_json(tmp / (ref + "/abm.json")), b = read_json(tmp / (out + "/abm.json"));
    ASSERT_EQ(a["loss"].size(), b["loss"].size());
    for (size_t s = 0; s < a["loss"].size(); ++s)
      EXPECT_NEAR(a["loss"][s].get<double>(), b["loss"][s].get<double>(),
                  1e-5 * std::abs(a["loss"][s].get<double>())) << scope << " step " << s;
    // Reports: every sample counted once over the replicas.
    EXPECT_EQ(a["accuracy_before"], b["accuracy_before"]) << scope;
    EXPECT_NEAR(a["loss_after"].get<double>(), b["loss_after"].get<double>(),
                1e-5 * a["loss_after"].get<double>()) << scope;
  }
}

TEST(AbmPipeline, ScopeIsMootOnOneStage) {
  TempDir tmp;
  make_abm_fixture(tmp);
  abm_init(tmp, 1, "shard", kArgs + " --abm-scope shard");
  abm_init(tmp, 1, "global", kArgs + " --abm-scope global");
  EXPECT_EQ(file_bytes(tmp / "shard/adapter/adapter_model.safetensors"),
            file_bytes(tmp / "global/adapter/adapter_model.safetensors"));
}

TEST(AbmPipeline, ShardScopeEqualsPerStageReference) {
  TempDir tmp;
  make_abm_fixture(tmp);
  abm_init(tmp, 2, "shard", kArgs + " --abm-scope shard");
  nlohmann::json j = read_json(tmp / "shard/abm.json");

  // The representative batch, straight from the file by the recorded indices.
  const auto rows = abm_fixture_rows();
  RepresentativeBatch rb;
  for (const auto& k : j["indices"]) {
    rb.indices.push_back(k.get<int64_t>());
    rb.ids.push_back(rows.at(k.get<size_t>()));
  }
  AbmConfig cfg;
  cfg.steps = 5;
  cfg.lr = 1e-2;
  cfg.batch = 2;
  cfg.seed = 5;
  LoraConfig lc;
  lc.r = 4;
  lc.dropout = 0.1;
  lc.seed = 5;
  lc.targets = {"all-linear"};
  const LlamaConfig mc = LlamaModel::load(tmp / "model").config();
  const std::vector<double> c = abm_layer_weights(mc.layers);  // --abm-layers all
  std::vector<StagePlan> plan = plan_stages(mc, 2, cfg.max_length);
  SafetensorsFile got(tmp / "shard/adapter/adapter_model.safetensors");
  LocalCommunicator self;
  std::vector<at::Tensor> inputs;  // teacher hidden states entering the stage
  for (const StagePlan& sp : plan) {
    LoadOptions lo;
    lo.first = sp.first_layer;
    lo.last = sp.last_layer;
    LlamaModel stage = LlamaModel::load(tmp / "model", lo);
    AdapterSet student = AdapterSet::attach(stage, lc);
    std::vector<int64_t> layers;
    std::vector<double> coef;
    for (int64_t l = sp.first_layer; l < sp.last_layer; ++l) {
      layers.push_back(l);
      coef.push_back(c[l] / double(mc.layers));
    }
    std::vector<int64_t> all;
    for (int64_t k = 0; k < rb.size(); ++k) all.push_back(k);
    // The next stage's input: this stage's teacher (base) output, captured before training.
    student.set_train(false);
    student.set_enabled(false);
    TeacherSigns out = capture_teacher(stage, rb, layers, all, 1, sp.first_layer ? &inputs : nullptr, true);
    student.set_enabled(true);
    AbmTrainer t(cfg, stage, student, rb, layers, coef, self, sp.first_layer ? &inputs : nullptr);
    t.set_teacher(out);
    t.optimize();
    for (const AdaptedModule& m : student.modules()) {
      at::Tensor A = got.read(key(m.name, "A"), at::kFloat), B = got.read(key(m.name, "B"), at::kFloat);
      EXPECT_LE((A - m.lora->A()).abs().max().item<double>(), 1e-5 * A.abs().max().item<double>()) << m.name;
      EXPECT_LE((B - m.lora->B()).abs().max().item<double>(), 1e-5 * B.abs().max().item<double>()) << m.name;
      if (m.kind == "gate_proj")  // every stage trained (up/down of a stage's last layer
        EXPECT_GT(B.abs().max().item<double>(), 0.0) << m.name;  // feed no loss in shard scope)
    }
    inputs = out.outputs;
  }
}

TEST(AbmPipeline, RepresentativeBatchComesFromRankZero) {
  TempDir tmp;
  make_abm_fixture(tmp);
  {  // the same rows in reverse order: only rank 1 reads this file
    auto rows = abm_fixture_rows();
    std::ofstream out(tmp / "reversed.jsonl");
    for (auto it = rows.rbegin(); it != rows.rend(); ++it)
      out << nlohmann::json{{"input_ids", *it}}.dump() << "\n";
  }
  abm_init(tmp, 2, "same", kArgs);
  const std::string common = std::string(" abm-init --model ") + (tmp / "model") +
                             " --out " + (tmp / "mixed") +
                             " --lora-targets all-linear --lora-r 4 --seed 5 --abm-samples 8 --threads 1" + kArgs;
  RunResult r = run("mpirun --oversubscribe -np 1 " + std::string(ABM_BINARY) + common + " --data " +
                    (tmp / "data.jsonl") + " : -np 1 " + ABM_BINARY + common + " --data " +
                    (tmp / "reversed.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_json(tmp / "same/abm.json")["indices"], read_json(tmp / "mixed/abm.json")["indices"]);
  EXPECT_EQ(file_bytes(tmp / "same/adapter/adapter_model.safetensors"),
            file_bytes(tmp / "mixed/adapter/adapter_model.safetensors"));
}

TEST(AbmPipeline, KilledStageEndsTheJob) {
  TempDir tmp;
  make_abm_fixture(tmp);
  const std::string cmd = "ABM_TEST_KILL_STAGE=1 timeout 120 mpirun --oversubscribe -np 3 " +
                          std::string(ABM_BINARY) + " abm-init --model " + (tmp / "model") +
                          " --data " + (tmp / "data.jsonl") + " --out " + (tmp / "dead") +
                          " --threads 1 --abm-samples 8 --lora-targets all-linear" + kArgs;
  RunResult r = run(cmd);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 124) << "the job hung until timeout:\n" << r.output;
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.output;  // mpirun names it
  EXPECT_FALSE(std::ifstream(tmp / "dead/adapter/adapter_model.safetensors").good());
}

// Progress: with --log-every 1, one line per ABM step (steps 1..5 in order) on one stage
// (the model's loss) and on 2 stages (rank 0's stage, labelled with it), in batch logs.
TEST(AbmPipeline, OneProgressLinePerStepAtLogEveryOne) {
  TempDir tmp;
  make_abm_fixture(tmp);
  for (auto [ranks, label] : {std::pair{1, "abm: step "}, {2, "abm: stage 1/2 step "}}) {
    RunResult r = abm_init(tmp, ranks, "progress" + std::to_string(ranks),
                           kArgs + " --abm-scope global --log-every 1");
    std::vector<std::string> steps;
    for (size_t p = r.output.find(label); p != std::string::npos; p = r.output.find(label, p + 1)) {
      const size_t b = p + std::strlen(label);
      steps.push_back(r.output.substr(b, r.output.find(' ', b) - b));
    }
    EXPECT_EQ(steps, (std::vector<std::string>{"1/5", "2/5", "3/5", "4/5", "5/5"})) << r.output;
    // The teacher pass and both boundary reports report their micro-batches too.
    EXPECT_NE(r.output.find("abm: teacher pass micro-batch "), std::string::npos) << r.output;
    size_t reports = 0;
    for (size_t p = r.output.find("boundary report micro-batch "); p != std::string::npos;
         p = r.output.find("boundary report micro-batch ", p + 1))
      ++reports;
    EXPECT_GE(reports, 2u) << r.output;  // before and after
  }
}
