// `abmlora train` as a cluster job, end to end with the real binary and real `mpirun` on a
// tiny init-model model (seconds per run): checkpoints, stop, resume, elastic resume, a
// writer killed mid-publish, damaged and foreign checkpoints, and `report --scaling`.
// Stops go through the real path: ABM_TEST_STOP_AT_STEP makes rank 0 raise SIGUSR1 after
// that step (train/test_hooks.h), the ranks agree, checkpoint and exit 3.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <hdf5.h>
#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint_file.h"
#include "test_util.h"

using namespace abm::test;

namespace {

const std::string kBin = ABM_BINARY;
std::string mpi(int np) { return "mpirun --oversubscribe --bind-to none -np " + std::to_string(np) + " "; }

// Learnable token sequences of varied lengths 6..16 (as in train_cli_test).
std::vector<int64_t> steps_of(const std::vector<nlohmann::json>& rec) {
  std::vector<int64_t> s;
  for (auto& r : rec) s.push_back(r["step"].get<int64_t>());
  return s;
}

std::vector<int64_t> one_to(int64_t n) {
  std::vector<int64_t> v;
  for (int64_t i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

bool exists(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

int lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// One shared model and data set, and one uninterrupted reference run, for every test:
// 2 ranks, 8 steps of a global batch of 6 over 40 rows (the second epoch starts in step 7),
// dropout on, fp32. A global batch of 6 with micro-batch 1 splits over 1, 2 and 3 ranks.
const std::string kSteps = "8";
struct Shared {
  TempDir tmp;
  std::string model = tmp / "model", other_model = tmp / "other";
  std::string data = tmp / "train.jsonl";
  Shared() {
    for (auto [dir, seed] : {std::pair{model, 1}, std::pair{other_model, 2}}) {
      RunResult r = run(kBin + " init-model --out " + dir + " --hidden 32 --intermediate 64 " +
                        "--layers 2 --heads 4 --kv-heads 2 --vocab 97 --std 0.05 --seed " +
                        std::to_string(seed));
      EXPECT_EQ(r.status, 0) << r.output;
    }
    write_token_rows(tmp / "train.jsonl", 40, 0);
    train(2, "ref", "", 0);
  }
  // `abmlora train` into tmp/out; returns the result (stdout + stderr).
  RunResult train(int np, const std::string& out, const std::string& extra, int expect,
                  const std::string& env = "", const std::string& model_dir = "") {
    std::string cmd = env + " " + (np > 1 ? mpi(np) : "") + kBin + " train --model " +
                      (model_dir.empty() ? model : model_dir) + " --data " + data +
                      " --out " + (tmp / out) + " --lora-targets all-linear " +
                      (extra.find("--lora-r") == std::string::npos ? "--lora-r 4 " : "") +
                      "--lora-dropout 0.1 --lr 5e-3 --warmup 2 --global-batch 6 --micro-batch 1 " +
                      "--threads 1 --seed 3 --log-every 100 --steps " + kSteps + " " + extra;
    RunResult r = run(cmd);
    EXPECT_EQ(r.status, expect) << cmd << "\n" << r.output;
    return r;
  }
  std::string ckpt(const std::string& run_dir, int64_t step) {
    char name[64];
    std::snprintf(name, sizeof(name), "/checkpoints/ckpt-%08ld.h5", long(step));
    return tmp / run_dir + name;
  }
};

Shared& shared() {
  static Shared s;  // made by the first test that needs it, removed at exit
  return s;
}

// 2 ranks stopped by SIGUSR1 after step 4 (shared by the resume tests, copied per test).
const std::string& stopped_at_4() {
  static std::string dir = [] {
    Shared& s = shared();
    RunResult r = s.train(2, "stop4", "--checkpoint-every 3", 3, "ABM_TEST_STOP_AT_STEP=4");
    EXPECT_NE(r.output.find("stopped at step 4 of 8 (SIGUSR1): checkpoint written; exit 3"),
              std::string::npos) << r.output;
    return std::string("stop4");
  }();
  return dir;
}

void copy_run(const std::string& from, const std::string& to) {
  Shared& s = shared();
  ASSERT_EQ(run("cp -r " + (s.tmp / from) + " " + (s.tmp / to)).status, 0);
}

void expect_bitwise(const abm::CheckpointState& a, const abm::CheckpointState& b) {
  ASSERT_EQ(a.trainable.size(), b.trainable.size());
  for (size_t i = 0; i < a.trainable.size(); ++i) {
    EXPECT_EQ(a.trainable[i].first, b.trainable[i].first);
    EXPECT_TRUE(at::equal(a.trainable[i].second, b.trainable[i].second)) << a.trainable[i].first;
    EXPECT_TRUE(at::equal(a.optimizer.exp_avg[i], b.optimizer.exp_avg[i])) << i;
    EXPECT_TRUE(at::equal(a.optimizer.exp_avg_sq[i], b.optimizer.exp_avg_sq[i])) << i;
  }
  EXPECT_EQ(a.optimizer.step, b.optimizer.step);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.samples_seen, b.samples_seen);
  EXPECT_EQ(a.tokens_seen, b.tokens_seen);
}

// File offset of a contiguous dataset's first byte.
int64_t dataset_offset(const std::string& path, const std::string& dataset) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  EXPECT_NE(off, HADDR_UNDEF);
  return int64_t(off);
}

}  // namespace

// Same world size: 8 steps uninterrupted == 4 steps, SIGUSR1, resume, 4 steps — bitwise.
TEST(Resume, SameWorldSizeIsBitwise) {
  Shared& s = shared();
  copy_run(stopped_at_4(), "same");
  EXPECT_TRUE(exists(s.ckpt("same", 3)));  // --checkpoint-every 3
  EXPECT_TRUE(exists(s.ckpt("same", 4)));  // the stop
  RunResult r = s.train(2, "same", "--checkpoint-every 3 --resume auto", 0);
  EXPECT_NE(r.output.find("resume: " + s.ckpt("same", 4) + " at step 4"), std::string::npos) << r.output;
  expect_bitwise(abm::read_checkpoint(s.ckpt("ref", 8)), abm::read_checkpoint(s.ckpt("same", 8)));
  auto ref = read_jsonl(s.tmp / "ref/metrics.jsonl"), got = read_jsonl(s.tmp / "same/metrics.jsonl");
  ASSERT_EQ(steps_of(got), one_to(8)) << "the curve continues without a gap or duplicate";
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(ref[i]["loss"].get<double>(), got[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(ref[i]["grad_norm"].get<double>(), got[i]["grad_norm"].get<double>()) << i + 1;
    EXPECT_EQ(ref[i]["tokens_seen"], got[i]["tokens_seen"]);
  }
  // The exported PEFT adapters are byte-identical too.
  EXPECT_EQ(run("cmp " + (s.tmp / "ref/adapter/adapter_model.safetensors") + " " +
                (s.tmp / "same/adapter/adapter_model.safetensors")).status, 0);
}

// bf16 compute resumes bitwise too, and --dtype auto keeps the dtype the run started with
// (RUN/config.ini), even where the measurement would now pick the other one. The measured
// figures are overridden (ABM_MATMUL_GFLOPS), so the test does not depend on this CPU.
TEST(Resume, Bf16IsBitwiseAndAutoKeepsTheRunsDtype) {
  Shared& s = shared();
  s.train(2, "bf16ref", "--dtype bf16", 0);
  RunResult r = s.train(2, "bf16", "--checkpoint-every 3", 3,
                        "ABM_TEST_STOP_AT_STEP=4 ABM_MATMUL_GFLOPS=fp32=100,bf16=150");
  EXPECT_NE(r.output.find("train: compute dtype bf16 (--dtype auto: bf16 matmul 150 GFLOP/s vs "
                          "fp32 100"), std::string::npos) << r.output;
  r = s.train(2, "bf16", "--checkpoint-every 3 --resume auto", 0, "ABM_MATMUL_GFLOPS=fp32=100,bf16=149");
  EXPECT_NE(r.output.find("train: compute dtype bf16 (--dtype auto: kept from"), std::string::npos)
      << r.output;
  expect_bitwise(abm::read_checkpoint(s.ckpt("bf16ref", 8)), abm::read_checkpoint(s.ckpt("bf16", 8)));
  // ... and bf16 really differs from the fp32 run.
  EXPECT_NE(run("cmp -s " + (s.tmp / "ref/adapter/adapter_model.safetensors") + " " +
                (s.tmp / "bf16/adapter/adapter_model.safetensors")).status, 0);
}

// Elastic: 2 ranks -> stop -> 1 rank -> stop -> 3 ranks reads the same global batches as the
// uninterrupted 2-rank run (batch_hash: every (global sample number, row) pair of each
// step) and ends within 1e-6 of its adapter (measured: 1.5e-8). Not bitwise: the
// all-reduce sums the same numbers in another grouping, so fp32 rounding differs.
TEST(Resume, ElasticResumeKeepsTheGlobalDataOrder) {
  Shared& s = shared();
  copy_run(stopped_at_4(), "elastic");
  RunResult r1 = s.train(1, "elastic", "--resume auto", 3, "ABM_TEST_STOP_AT_STEP=6");
  EXPECT_NE(r1.output.find("written by 2 rank(s), now 1: elastic resume"), std::string::npos) << r1.output;
  EXPECT_NE(r1.output.find("(1 ranks x micro 1 x accumulation 6)"), std::string::npos) << r1.output;
  RunResult r3 = s.train(3, "elastic", "--resume auto", 0);
  EXPECT_NE(r3.output.find("resume: " + s.ckpt("elastic", 6) + " at step 6"), std::string::npos);
  EXPECT_NE(r3.output.find("(3 ranks x micro 1 x accumulation 2)"), std::string::npos) << r3.output;

  auto ref = read_jsonl(s.tmp / "ref/metrics.jsonl"), got = read_jsonl(s.tmp / "elastic/metrics.jsonl");
  ASSERT_EQ(steps_of(got), one_to(8));
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(ref[i]["batch_hash"], got[i]["batch_hash"]) << "step " << i + 1;
    EXPECT_EQ(ref[i]["targets"], got[i]["targets"]) << "step " << i + 1;
    EXPECT_NEAR(ref[i]["loss"].get<double>(), got[i]["loss"].get<double>(), 1e-5) << i + 1;
  }
  EXPECT_EQ(got[5]["ranks"], 1);
  EXPECT_EQ(got[7]["ranks"], 3);
  abm::CheckpointState a = abm::read_checkpoint(s.ckpt("ref", 8));
  abm::CheckpointState b = abm::read_checkpoint(s.ckpt("elastic", 8));
  ASSERT_EQ(a.trainable.size(), b.trainable.size());
  double worst = 0;
  for (size_t i = 0; i < a.trainable.size(); ++i)
    worst = std::max(worst, max_abs_diff(a.trainable[i].second, b.trainable[i].second));
  std::printf("  elastic 2->1->3 ranks: max |adapter - uninterrupted| = %.3g\n", worst);
  EXPECT_LE(worst, 1e-6);
  EXPECT_EQ(a.tokens_seen, b.tokens_seen);
  EXPECT_EQ(b.world_size, 3);
}

// A global batch that the new world size cannot split is refused, naming what would work.
TEST(Resume, ImpossibleWorldSizeNamesValidValues) {
  Shared& s = shared();
  copy_run(stopped_at_4(), "four");
  RunResult r = s.train(4, "four", "--resume auto", 2);
  EXPECT_NE(r.output.find("--global-batch 6 is not a multiple of --micro-batch 1 x 4 data rank(s)"
                          " = 4; nearest valid global batch: 4 or 8; to keep 6: 1|2|3|6 rank(s) "
                          "with --micro-batch 1"), std::string::npos) << r.output;
}

// kill -9 of the writer between its durable *.tmp and the rename (ABM_TEST_CKPT_STALL_STEP):
// the previous checkpoint stays the latest, --resume auto takes it, and the metrics written
// after it are replaced, not repeated.
TEST(Resume, KilledWriterLeavesThePreviousCheckpoint) {
  Shared& s = shared();
  const std::string out = s.tmp / "killed", log = s.tmp / "killed.log";
  const std::string cmd = "ABM_TEST_CKPT_STALL_STEP=4 exec " + kBin + " train --model " + s.model +
                          " --data " + (s.tmp / "train.jsonl") + " --out " + out +
                          " --lora-targets all-linear --lora-r 4 --lora-dropout 0.1 --lr 5e-3" +
                          " --warmup 2 --global-batch 6 --threads 1 --seed 3 --steps 8" +
                          " --checkpoint-every 2 --keep-checkpoints 0 >" + log + " 2>&1";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const std::string tmpfile = s.ckpt("killed", 4) + ".tmp";
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!exists(tmpfile) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(exists(tmpfile)) << "the writer never reached step 4";
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  EXPECT_FALSE(exists(s.ckpt("killed", 4)));
  EXPECT_EQ(steps_of(read_jsonl(out + "/metrics.jsonl")), one_to(4));

  RunResult r = s.train(1, "killed", "--checkpoint-every 2 --keep-checkpoints 0 --resume auto", 0);
  EXPECT_NE(r.output.find("resume: " + s.ckpt("killed", 2) + " at step 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("metrics: dropped 2 record(s)"), std::string::npos) << r.output;
  EXPECT_EQ(steps_of(read_jsonl(out + "/metrics.jsonl")), one_to(8));
  EXPECT_FALSE(exists(tmpfile)) << "the next write removes a killed writer's *.tmp";

  // Damage the two newest: a flipped bit in ckpt 8's data, ckpt 6 cut in half. --resume
  // auto reports both (one line each) and continues from step 4.
  const std::string c8 = s.ckpt("killed", 8), c6 = s.ckpt("killed", 6);
  int64_t off = dataset_offset(c8, "/adapter/model.layers.1.mlp.down_proj/lora_B");
  int fd = ::open(c8.c_str(), O_RDWR);
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, off + 5), 1);
  b ^= 0x04;
  ASSERT_EQ(::pwrite(fd, &b, 1, off + 5), 1);
  ::close(fd);
  struct stat st6{};
  ::stat(c6.c_str(), &st6);
  ASSERT_EQ(::truncate(c6.c_str(), st6.st_size / 2), 0);
  r = s.train(1, "killed", "--checkpoint-every 2 --keep-checkpoints 0 --resume auto", 0);
  EXPECT_EQ(lines_with(r.output, "resume: skipped "), 2) << r.output;
  EXPECT_NE(r.output.find("resume: skipped " + c8 + ": /adapter/model.layers.1.mlp.down_proj/lora_B"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resume: skipped " + c6 + ": "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resume: " + s.ckpt("killed", 4) + " at step 4"), std::string::npos) << r.output;
  EXPECT_EQ(steps_of(read_jsonl(out + "/metrics.jsonl")), one_to(8));
}

// Another base model or another LoRA rank: exit 2, one line that says what differs.
TEST(Resume, ForeignCheckpointIsRefused) {
  Shared& s = shared();
  copy_run(stopped_at_4(), "foreign");
  RunResult r = s.train(1, "foreign", "--resume auto", 2, "", s.other_model);
  EXPECT_EQ(lines_with(r.output, "error:"), 1) << r.output;
  EXPECT_NE(r.output.find(s.ckpt("foreign", 4) + ": cannot resume: it was made for another base model"),
            std::string::npos) << r.output;
  r = s.train(1, "foreign", "--resume auto --lora-r 8", 2);
  EXPECT_EQ(lines_with(r.output, "error:"), 1) << r.output;
  EXPECT_NE(r.output.find("cannot resume: LoRA rank differs (checkpoint --lora-r 4, now 8)"),
            std::string::npos) << r.output;
  // An explicit file works like auto; nothing was written by the refused runs.
  r = s.train(2, "foreign", "--resume " + s.ckpt("foreign", 3), 0);
  EXPECT_NE(r.output.find("at step 3"), std::string::npos) << r.output;
}

// Edited training data (other rows under the same file name): the saved data position
// would point at other examples, so the resume is refused naming the data.
TEST(Resume, EditedDataIsRefused) {
  Shared& s = shared();
  copy_run(stopped_at_4(), "edited");
  const std::string original = s.data;
  s.data = s.tmp / "edited/train.jsonl";
  write_token_rows(s.data, 40, 1);  // same count, other tokens
  RunResult r = s.train(1, "edited", "--resume auto", 2);
  s.data = original;
  EXPECT_EQ(lines_with(r.output, "error:"), 1) << r.output;
  EXPECT_NE(r.output.find(s.ckpt("edited", 4) + ": cannot resume: the training data differs (checkpoint rows:hash 40:"),
            std::string::npos) << r.output;
  EXPECT_NE(run(kBin + " inspect " + s.ckpt("edited", 4)).output.find("training data rows:hash 40:"),
            std::string::npos);
}

// --time-budget: a budget below the fixed 10 s margin is spent after the first step, so
// the run stops there with a checkpoint and exit 3 on every rank, and the resumed run ends
// bitwise where the uninterrupted one does.
TEST(Resume, TimeBudgetStopsWithACheckpoint) {
  Shared& s = shared();
  RunResult r = s.train(2, "budget", "--time-budget 0.1", 3);
  EXPECT_NE(r.output.find("stopped at step 1 of 8 (time budget"), std::string::npos) << r.output;
  EXPECT_TRUE(exists(s.ckpt("budget", 1)));
  r = s.train(2, "budget", "--resume auto", 0);
  expect_bitwise(abm::read_checkpoint(s.ckpt("ref", 8)), abm::read_checkpoint(s.ckpt("budget", 8)));
}

// train --init abm, stopped and resumed: ABM runs once (the checkpoint holds its result
// and provenance), and the run ends bitwise where the uninterrupted ABM run does.
TEST(Resume, AbmIsNotRerunOnResume) {
  Shared& s = shared();
  const std::string abm = "--init abm --abm-steps 3 --abm-samples 4 --abm-max-length 16 ";
  RunResult full = s.train(2, "abm-ref", abm, 0);
  RunResult first = s.train(2, "abm-stop", abm, 3, "ABM_TEST_STOP_AT_STEP=4");
  EXPECT_NE(first.output.find("abm: stage plan"), std::string::npos) << first.output;
  RunResult second = s.train(2, "abm-stop", abm + "--resume auto", 0);
  EXPECT_NE(second.output.find("abm: not re-run on resume (the checkpoint's adapters started "
                               "from ABM with the provenance in its /abm group)"),
            std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("abm: stage plan"), std::string::npos) << second.output;
  abm::CheckpointState a = abm::read_checkpoint(s.ckpt("abm-ref", 8));
  abm::CheckpointState b = abm::read_checkpoint(s.ckpt("abm-stop", 8));
  expect_bitwise(a, b);
  ASSERT_TRUE(a.abm && b.abm);
  EXPECT_EQ(a.abm->samples, b.abm->samples);
  EXPECT_EQ(a.abm->loss, b.abm->loss);
}

// The checkpoint's /abm scope is the one the ABM run used, as abm.json says: a default
// train --init abm on 1 rank is replicated, on 2 ranks staged (--abm-scope, default global).
TEST(Resume, AbmProvenanceRecordsTheRunsScope) {
  Shared& s = shared();
  const std::string abm = "--init abm --abm-steps 1 --abm-samples 4 --abm-max-length 16 ";
  s.train(1, "abm-one", abm, 0);
  for (const auto& [run_dir, scope] : {std::pair{"abm-one", "replicated"}, {"abm-ref", "global"}}) {
    if (std::string(run_dir) == "abm-ref" && !exists(s.ckpt("abm-ref", 8)))
      s.train(2, "abm-ref", abm, 0);  // when this test runs alone
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(s.tmp / (std::string(run_dir) + "/checkpoints")))
      if (e.path().extension() == ".h5") files.push_back(e.path());
    ASSERT_FALSE(files.empty()) << run_dir;
    abm::CheckpointState c = abm::read_checkpoint(files.front());
    ASSERT_TRUE(c.abm) << run_dir;
    EXPECT_EQ(c.abm->scope, scope) << run_dir;
    std::ifstream abm_json(s.tmp / (std::string(run_dir) + "/abm.json"));
    EXPECT_EQ(nlohmann::json::parse(abm_json)["scope"], scope) << run_dir;
  }
}

// report --scaling: a sweep directory of runs at 1, 2 and 4 ranks -> table and efficiency.
TEST(ScalingReport, TableAndEfficiencyVsTheSmallestRun) {
  Shared& s = shared();
  const std::string sweep = s.tmp / "sweep";
  auto write_run = [&](const std::string& name, int ranks, int nodes, std::vector<double> tps) {
    ASSERT_EQ(run("mkdir -p " + sweep + "/" + name).status, 0);
    std::ofstream m(sweep + "/" + name + "/metrics.jsonl");
    for (size_t i = 0; i < tps.size(); ++i)
      m << nlohmann::json{{"step", i + 1}, {"loss", 1.0}, {"tokens_per_s", tps[i]},
                          {"ranks", ranks}, {"nodes", nodes}}.dump() << "\n";
  };
  // The first step (warm-up) is ignored; the median of the rest counts.
  write_run("nodes-1", 2, 1, {10, 1000, 1010, 990});
  write_run("nodes-2", 4, 2, {10, 1800, 1900, 5000});
  write_run("nodes-4", 8, 4, {10, 3000, 3200, 2800, 3000});
  RunResult r = run(kBin + " report --scaling " + sweep);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* want : {"run\tnodes\tranks\tsteps\ttokens/s\tspeedup\tefficiency",
                           "nodes-1\t1\t2\t4\t1000\t1.00\t1.00", "nodes-2\t2\t4\t4\t1900\t1.90\t0.95",
                           "nodes-4\t4\t8\t5\t3000\t3.00\t0.75"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  EXPECT_TRUE(exists(sweep + "/report/scaling.tsv"));
  if (r.output.find("warning: gnuplot not found") == std::string::npos)
    EXPECT_TRUE(exists(sweep + "/report/scaling.png")) << r.output;
  // A real run's records carry ranks and nodes, so it is a valid point too.
  r = run(kBin + " report --scaling " + (s.tmp / "ref") + " --out " + (s.tmp / "ref-report"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ref\t1\t2\t8\t"), std::string::npos) << r.output;
}
