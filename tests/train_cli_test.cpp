// End to end with the real binary and real `mpirun -np 2`, on tiny models made by
// `abmlora init-model` and pre-tokenized data (seconds each): eval during training equals
// `abmlora eval` of the exported adapter, eval sharded over 2 ranks equals 1 rank, a
// packed first step has the loss of the same examples unpacked, pretrain writes a model
// that loads and has a lower eval loss, and --recompute leaves the run unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "test_util.h"

using namespace abm::test;

namespace {

const std::string kBin = ABM_BINARY;
const std::string kMpi2 = "mpirun --oversubscribe -np 2 ";

RunResult run_ok(const std::string& cmd) {
  RunResult r = run(cmd);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
  return r;
}

// Learnable token sequences: a fixed walk through the vocabulary, entered at varied points;
struct Eval {
  double loss = NAN;
  long targets = -1;
};
Eval parse_eval(const std::string& output) {  // "eval: loss 4.123456 perplexity ... targets N"
  std::smatch m;
  Eval e;
  if (std::regex_search(output, m, std::regex(R"(eval: loss ([0-9.eE+-]+) perplexity \S+ targets (\d+))"))) {
    e.loss = std::stod(m[1]);
    e.targets = std::stol(m[2]);
  }
  return e;
}

// Largest |difference| between two runs' exported adapters (RUN/adapter), tensor by tensor.
double adapter_max_diff(const std::string& run_a, const std::string& run_b) {
  abm::SafetensorsFile a(run_a + "/adapter/adapter_model.safetensors");
  abm::SafetensorsFile b(run_b + "/adapter/adapter_model.safetensors");
  double worst = 0;
  for (const std::string& name : a.names())
    worst = std::max(worst, max_abs_diff(a.read(name, at::kFloat), b.read(name, at::kFloat)));
  return worst;
}

struct Fixture {
  TempDir tmp;
  std::string model = tmp / "model";
  Fixture() {
    run_ok(kBin + " init-model --out " + model + " --hidden 32 --intermediate 64 --layers 2 " +
           "--heads 4 --kv-heads 2 --vocab 97 --seed 1 --std 0.05");
    write_token_rows(tmp / "train.jsonl", 40, 0);
    write_token_rows(tmp / "eval.jsonl", 13, 1000);  // 13 rows: shards of 7 and 6
  }
  std::string train(const std::string& np, const std::string& out, const std::string& extra,
                    const std::string& data = "train.jsonl") {
    std::string cmd = np + kBin + " train --model " + model + " --data " + (tmp / data) +
                      " --out " + (tmp / out) + " --lora-targets all-linear --lora-r 4 --lr 5e-3" +
                      " --threads 1 --seed 3 " + extra;
    return run_ok(cmd).output;
  }
  Eval eval(const std::string& np, const std::string& model_dir, const std::string& extra = "") {
    RunResult r = run_ok(np + kBin + " eval --model " + model_dir + " --data " + (tmp / "eval.jsonl") +
                         " --threads 1 " + extra);
    Eval e = parse_eval(r.output);
    EXPECT_FALSE(std::isnan(e.loss)) << r.output;
    return e;
  }
};

}  // namespace

TEST(TrainCli, EvalEveryWritesEvalAtThoseStepsAndMatchesEvalCommand) {
  Fixture f;
  f.train(kMpi2, "run", "--eval-data " + (f.tmp / "eval.jsonl") +
                            " --eval-every 2 --steps 6 --global-batch 8 --micro-batch 2");
  auto rec = read_jsonl(f.tmp / "run/metrics.jsonl");
  ASSERT_EQ(rec.size(), 6u);
  for (auto& r : rec) {
    int step = r["step"];
    EXPECT_EQ(r.contains("eval_loss"), step % 2 == 0) << r.dump();
  }
  EXPECT_LT(rec[5]["eval_loss"].get<double>(), rec[1]["eval_loss"].get<double>()) << "it learns";
  // The last eval ran on the final adapter, which was exported: `abmlora eval` of it agrees
  // (it prints 6 decimals).
  Eval e = f.eval("", f.model, "--adapter " + (f.tmp / "run/adapter"));
  EXPECT_NEAR(e.loss, rec[5]["eval_loss"].get<double>(), 2e-6);
}

TEST(TrainCli, EvalOnTwoRanksEqualsOneRank) {
  Fixture f;
  f.train("", "run", "--steps 2 --global-batch 4 --micro-batch 2");  // an adapter with B != 0
  const std::string adapter = "--adapter " + (f.tmp / "run/adapter");
  Eval one = f.eval("", f.model, adapter), two = f.eval(kMpi2, f.model, adapter);
  EXPECT_EQ(one.targets, two.targets);
  EXPECT_GT(one.targets, 0);
  EXPECT_NEAR(one.loss, two.loss, 2e-6);
  Eval base1 = f.eval("", f.model, "--micro-batch 3"), base2 = f.eval(kMpi2, f.model);
  EXPECT_NEAR(base1.loss, base2.loss, 2e-6);
  EXPECT_GT(std::abs(base1.loss - one.loss), 1e-4) << "the adapter must matter";
}

TEST(TrainCli, PackedFirstStepLossEqualsUnpacked) {
  // 8 examples of 16 tokens; --max-length 64 packs them into 2 rows of 4. A global batch
  // of all rows makes step 1 see the same examples either way, before any update.
  Fixture f;
  write_token_rows(f.tmp / "same16.jsonl", 8, 500, 16);
  const std::string common = "--max-length 64 --steps 3 ";
  f.train(kMpi2, "plain", common + "--global-batch 8 --micro-batch 2", "same16.jsonl");
  f.train(kMpi2, "packed", common + "--pack --global-batch 2 --micro-batch 1", "same16.jsonl");
  auto a = read_jsonl(f.tmp / "plain/metrics.jsonl"), b = read_jsonl(f.tmp / "packed/metrics.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(a[0]["targets"], b[0]["targets"]);
  EXPECT_EQ(a[0]["targets"].get<int>(), 8 * 15);
  double la = a[0]["loss"], lb = b[0]["loss"];
  EXPECT_LE(std::abs(la - lb), 1e-5 * la) << la << " vs " << lb;
  for (auto& r : b) EXPECT_TRUE(std::isfinite(r["loss"].get<double>())) << r.dump();
}

TEST(TrainCli, PretrainWritesLoadableModelWithLowerEvalLoss) {
  Fixture f;
  Eval before = f.eval("", f.model);
  std::string cmd = kMpi2 + kBin + " pretrain --model " + f.model + " --data " +
                    (f.tmp / "train.jsonl") + " --out " + (f.tmp / "pre") +
                    " --steps 30 --global-batch 8 --micro-batch 2 --lr 3e-3 --warmup 3 --threads 1";
  run_ok(cmd);
  Eval after = f.eval(kMpi2, f.tmp / "pre/model");
  EXPECT_EQ(after.targets, before.targets);
  EXPECT_LT(after.loss, before.loss - 0.5) << before.loss << " -> " << after.loss;
}

TEST(TrainCli, RecomputeLeavesTheRunUnchanged) {
  // Same losses, bitwise (fp32, dropout on, 2 ranks with accumulation); the adapter files
  // byte-identical.
  Fixture f;
  std::string common = "--steps 3 --global-batch 8 --micro-batch 2 --lora-dropout 0.1";
  f.train(kMpi2, "plain", common);
  f.train(kMpi2, "rc", common + " --recompute");
  auto a = read_jsonl(f.tmp / "plain/metrics.jsonl"), b = read_jsonl(f.tmp / "rc/metrics.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << i;
    EXPECT_EQ(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>()) << i;
  }
  auto bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string pa = bytes(f.tmp / "plain/adapter/adapter_model.safetensors");
  EXPECT_FALSE(pa.empty());
  EXPECT_EQ(pa, bytes(f.tmp / "rc/adapter/adapter_model.safetensors"));
}

// `bench --what train --dtypes fp32,bf16,auto` runs every row to the end (bf16 once died on
// an AVX512-BF16/AMX CPU right after the fp32 row, in oneDNN's scratch allocation through
// the step-memory counter), on a small geometry.
TEST(TrainCli, BenchTrainRunsFp32AndBf16) {
  RunResult r = run_ok(kBin + " bench --what train --dtypes fp32,bf16,auto --train-threads 1 "
                       "--train-hidden 64 --train-layers 2 --train-heads 4 --train-kv-heads 4 "
                       "--train-intermediate 128 --train-vocab 256 --train-seq 32 --micro-batch 2 "
                       "--steps 1 --warmup 1 --recompute off,on --eager none");
  for (std::string row : {"fp32      manual    off", "bf16      manual    off", "bf16      manual    on",
                          "auto:fp32 manual    off"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
}

// --init pissa end to end: the residual base leaves step 1's loss at the base model's
// (kaiming, B = 0), 2 ranks equal 1 rank up to fp32 summation order (as for every init:
// the gradient is summed in another order), and a run stopped at step 2 and resumed
// writes the uninterrupted run's adapter byte for byte (the residual is rebuilt bitwise).
TEST(TrainCli, PissaTwoRanksEqualOneAndResumeIsBitwise) {
  Fixture f;
  const std::string common = "--steps 4 --global-batch 4 --micro-batch 2 --checkpoint-every 2";
  f.train("", "pissa1", common + " --init pissa");
  f.train(kMpi2, "pissa2", common + " --init pissa");
  f.train("", "kaiming", common);
  auto one = read_jsonl(f.tmp / "pissa1/metrics.jsonl"), two = read_jsonl(f.tmp / "pissa2/metrics.jsonl");
  auto lora = read_jsonl(f.tmp / "kaiming/metrics.jsonl");
  ASSERT_EQ(one.size(), 4u);
  ASSERT_EQ(two.size(), 4u);
  EXPECT_NEAR(one[0]["loss"].get<double>(), lora[0]["loss"].get<double>(), 1e-5);
  for (size_t i = 0; i < one.size(); ++i)
    EXPECT_NEAR(one[i]["loss"].get<double>(), two[i]["loss"].get<double>(), 1e-5) << i;
  EXPECT_GT(std::abs(one[3]["loss"].get<double>() - lora[3]["loss"].get<double>()), 1e-4)
      << "PiSSA must train differently from kaiming";
  const double worst = adapter_max_diff(f.tmp / "pissa1", f.tmp / "pissa2");
  std::printf("pissa: 1 vs 2 ranks adapter max|diff| %.3g\n", worst);
  EXPECT_LE(worst, 1e-5);

  RunResult stop = run("ABM_TEST_STOP_AT_STEP=2 " + kBin + " train --model " + f.model +
                       " --data " + (f.tmp / "train.jsonl") + " --out " + (f.tmp / "res") +
                       " --lora-targets all-linear --lora-r 4 --lr 5e-3 --threads 1 --seed 3 " +
                       common + " --init pissa");
  ASSERT_EQ(stop.status, 3) << stop.output;
  f.train("", "res", common + " --init pissa --resume auto");
  auto bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string full = bytes(f.tmp / "pissa1/adapter/adapter_model.safetensors");
  EXPECT_FALSE(full.empty());
  EXPECT_EQ(full, bytes(f.tmp / "res/adapter/adapter_model.safetensors"));
}

// --init lora-ga: the model is unchanged at init (step 1's loss = kaiming's), its
// information loss at init (step 0, on the probe its gradient came from) is below every
// other init's (kaiming, gaussian, pissa, abm), and 2 ranks give the same run up to the gradient all-reduce's order.
TEST(TrainCli, LoraGaStartsAtTheBaseWithTheLowestInformationLoss) {
  Fixture f;
  const std::string common = "--steps 3 --global-batch 4 --micro-batch 2 --info-loss-every 1 "
                             "--abm-samples 8 --abm-steps 20";  // (the --abm-* only for abm)
  std::map<std::string, std::vector<nlohmann::json>> m;
  for (const std::string init : {"kaiming", "gaussian", "pissa", "lora-ga", "abm"}) {
    f.train("", init, common + " --init " + init);
    m[init] = read_jsonl(f.tmp / (init + "/metrics.jsonl"));
    ASSERT_EQ(m[init].size(), 4u) << init;  // step 0 (init) + 3 steps
  }
  auto info0 = [&](const std::string& init) { return m[init][0]["info_loss"]["total"].get<double>(); };
  std::printf("information loss at init: kaiming %.4f gaussian %.4f pissa %.4f lora-ga %.4f "
              "abm %.4f\n", info0("kaiming"), info0("gaussian"), info0("pissa"), info0("lora-ga"),
              info0("abm"));
  for (const std::string other : {"kaiming", "gaussian", "pissa", "abm"})
    EXPECT_LT(info0("lora-ga"), info0(other)) << other;
  EXPECT_NEAR(m["lora-ga"][1]["loss"].get<double>(), m["kaiming"][1]["loss"].get<double>(), 1e-5);
  f.train(kMpi2, "ga2", common + " --init lora-ga");
  auto two = read_jsonl(f.tmp / "ga2/metrics.jsonl");
  ASSERT_EQ(two.size(), 4u);
  EXPECT_NEAR(two[0]["info_loss"]["total"].get<double>(), info0("lora-ga"), 1e-5);
  for (size_t i = 1; i < two.size(); ++i)
    EXPECT_NEAR(two[i]["loss"].get<double>(), m["lora-ga"][i]["loss"].get<double>(), 1e-4) << i;
}

// --abm-teacher task (the official protocol): train first trains a LoRA on the task
// (RUN/teacher), records it (abm.json, the checkpoint's /abm group), and ABM matches base +
// that LoRA. 2 ranks give 1 rank's run; a stop inside the teacher resumes the teacher; a
// stop after it never trains it again: with the student's checkpoint ABM is not re-run,
// without one the finished teacher is reused. Every interrupted run ends with the
// uninterrupted run's adapter, byte for byte.
TEST(TrainCli, TaskTeacherIsTrainedOnceRecordedAndResumable) {
  Fixture f;
  const std::string abm = "--steps 4 --global-batch 4 --micro-batch 2 --checkpoint-every 2 "
                          "--init abm --abm-teacher task --abm-samples 8 --abm-steps 5 ";
  auto bytes = [&](const std::string& run) {
    std::ifstream in(f.tmp / (run + "/adapter/adapter_model.safetensors"), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto stopped = [&](const std::string& out, const std::string& extra, int at) {
    return run("ABM_TEST_STOP_AT_STEP=" + std::to_string(at) + " " + kBin + " train --model " +
               f.model + " --data " + (f.tmp / "train.jsonl") + " --out " + (f.tmp / out) +
               " --lora-targets all-linear --lora-r 4 --lr 5e-3 --threads 1 --seed 3 " + extra +
               " --resume auto");
  };

  // Uninterrupted, 1 rank: the teacher's 3 steps, then ABM against it, then the student's 4.
  const std::string full = f.train("", "full", abm + "--abm-teacher-steps 3");
  EXPECT_NE(full.find("abm: training the task teacher: 3 steps"), std::string::npos) << full;
  auto teacher_curve = read_jsonl(f.tmp / "full/teacher/metrics.jsonl");
  ASSERT_EQ(teacher_curve.size(), 3u);
  std::ifstream js(f.tmp / "full/abm.json");
  const nlohmann::json j = nlohmann::json::parse(js);
  const nlohmann::json& tt = j.at("teacher_training");
  EXPECT_EQ(tt.at("steps"), 3);
  EXPECT_EQ(tt.at("loss").get<double>(), teacher_curve.back()["loss"].get<double>());
  EXPECT_EQ(j.at("teacher").get<std::string>(), f.tmp / "full/teacher/adapter");
  EXPECT_EQ(tt.at("adapter"), j.at("teacher"));
  abm::SafetensorsFile teacher(f.tmp / "full/teacher/adapter/adapter_model.safetensors");
  double teacher_b = 0;  // trained: B is no longer the init's 0
  for (const std::string& name : teacher.names())
    if (name.find("lora_B") != std::string::npos)
      teacher_b = std::max(teacher_b, teacher.read(name, at::kFloat).abs().max().item<double>());
  EXPECT_GT(teacher_b, 0);
  const RunResult inspect =
      run(kBin + " inspect " + (f.tmp / "full/checkpoints/ckpt-00000004.h5"));
  EXPECT_NE(inspect.output.find("teacher trained on the task: 3 steps"), std::string::npos)
      << inspect.output;
  EXPECT_NE(inspect.output.find("teacher " + (f.tmp / "full/teacher/adapter")), std::string::npos);
  // ABM against the task teacher starts elsewhere than ABM against the base.
  f.train("", "base-teacher", "--steps 4 --global-batch 4 --micro-batch 2 --init abm "
                              "--abm-samples 8 --abm-steps 5");
  EXPECT_NE(bytes("full"), bytes("base-teacher"));

  // 2 ranks (2 ABM stages) = 1 rank, up to the all-reduce's summation order.
  f.train(kMpi2, "two", abm + "--abm-teacher-steps 3");
  const double worst = adapter_max_diff(f.tmp / "full", f.tmp / "two");
  std::printf("task teacher: 1 vs 2 ranks adapter max|diff| %.3g\n", worst);
  EXPECT_LE(worst, 1e-5);

  // Stopped inside the teacher (its step 2): the teacher continues from its checkpoint.
  RunResult s = stopped("in-teacher", abm + "--abm-teacher-steps 3", 2);
  ASSERT_EQ(s.status, 3) << s.output;
  EXPECT_NE(s.output.find("stopped while training the task teacher"), std::string::npos) << s.output;
  const std::string resumed = f.train("", "in-teacher", abm + "--abm-teacher-steps 3 --resume auto");
  EXPECT_NE(resumed.find("abm: task teacher resumed from"), std::string::npos) << resumed;
  EXPECT_EQ(bytes("in-teacher"), bytes("full"));

  // Teacher of 1 step, stopped at the student's step 2: with its checkpoint, nothing of the
  // init runs again; with the checkpoints gone, the finished teacher is reused.
  const std::string one = abm + "--abm-teacher-steps 1";
  f.train("", "ref1", one);
  ASSERT_EQ(stopped("after", one, 2).status, 3);
  s = stopped("after", one, 3);
  ASSERT_EQ(s.status, 3) << s.output;
  EXPECT_EQ(s.output.find("training the task teacher"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("abm: not re-run on resume"), std::string::npos) << s.output;
  std::filesystem::remove_all(f.tmp / "after/checkpoints");
  const std::string again = f.train("", "after", one + " --resume auto");
  EXPECT_EQ(again.find("training the task teacher"), std::string::npos) << again;
  EXPECT_NE(again.find("reused (1 steps"), std::string::npos) << again;
  EXPECT_EQ(bytes("after"), bytes("ref1"));
}
