// abmlora report's "steps to target" (issue 18, item 5): each run is compared against the
// final loss of the LoRA run with the same seed, or of --target-from RUN, or a fixed
// --target; never silently against whichever run was listed first.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "abm/run_report.h"
#include "core/check.h"
#include "test_util.h"

namespace abm {
namespace {

// A run directory with config.ini (init, seed) and one metrics record per step.
std::string write_run(const test::TempDir& t, const std::string& name, const std::string& init,
                      int seed, const std::vector<double>& losses) {
  const std::string dir = t / name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.ini") << "init = " << init << "\nlr = 0.0002\nseed = " << seed << "\n";
  std::ofstream m(dir + "/metrics.jsonl");
  for (size_t i = 0; i < losses.size(); ++i) m << "{\"step\": " << i + 1 << ", \"loss\": " << losses[i] << "}\n";
  return dir;
}

// The line of the table whose first column is `run`, split at tabs.
std::vector<std::string> row(const std::string& table, const std::string& run) {
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cols;
    std::istringstream l(line);
    for (std::string c; std::getline(l, c, '\t');) cols.push_back(c);
    if (!cols.empty() && cols[0] == run) return cols;
  }
  ADD_FAILURE() << run << " not in\n" << table;
  return {};
}

// The init column and the init's wall time: abm.json marks ABM (abm-task with
// --abm-teacher task in config.ini); RUN/init.json's seconds, when present, are the init's.
TEST(Report, InitNameAndSecondsFromTheRunDirectory) {
  test::TempDir t;
  const std::string a = write_run(t, "a", "abm", 0, {3, 2}), b = write_run(t, "b", "abm", 0, {3, 2});
  std::ofstream(b + "/config.ini", std::ios::app) << "abm-teacher = task\n";
  for (const std::string& d : {a, b})
    std::ofstream(d + "/abm.json") << R"({"teacher_seconds": 1.5, "seconds": 2})";
  std::ofstream(b + "/init.json") << R"({"init": "abm", "seconds": 30.25})";
  const RunCurves ra = read_run(a), rb = read_run(b);
  EXPECT_EQ(ra.init, "abm");
  EXPECT_DOUBLE_EQ(ra.init_seconds, 3.5);
  EXPECT_EQ(rb.init, "abm-task");
  EXPECT_DOUBLE_EQ(rb.init_seconds, 30.25);
}

TEST(Report, StepsToTargetPairsEachRunWithTheSameSeedsLora) {
  test::TempDir t;
  // Seed 0's LoRA ends at 2.0, seed 1's at 1.0; the ABM run of seed 1 reaches 1.0 at step 4
  // and seed 0's 2.0 at step 2. Against the first run's 2.0, seed 1's ABM would read "2".
  std::vector<RunCurves> runs = {
      read_run(write_run(t, "lora-s0", "kaiming", 0, {4, 3, 2.5, 2.0})),
      read_run(write_run(t, "abm-s0", "abm", 0, {3, 2.0, 1.9, 1.8})),
      read_run(write_run(t, "lora-s1", "kaiming", 1, {3, 2, 1.5, 1.0})),
      read_run(write_run(t, "abm-s1", "abm", 1, {3, 2, 1.2, 1.0}))};
  EXPECT_EQ(runs[0].init, "lora");
  EXPECT_EQ(runs[1].init, "abm");
  EXPECT_EQ(runs[3].seed, 1);
  ReportOptions o;
  o.at = {2};
  o.smooth = 1;
  const std::string table = make_report(runs, o);
  EXPECT_EQ(row(table, "abm-s0"), (std::vector<std::string>{"abm-s0", "abm", "0", "3.0000", "2.0000",
                                                            "2.0000", "2", "-", "-", "0.0"}));
  EXPECT_EQ(row(table, "abm-s1")[5], "1.0000");
  EXPECT_EQ(row(table, "abm-s1")[6], "4");
  EXPECT_EQ(row(table, "lora-s1")[6], "4");

  o.target_from = "lora-s1";  // one explicit target for all
  const std::string from = make_report(runs, o);
  EXPECT_EQ(row(from, "abm-s0")[5], "1.0000");
  EXPECT_EQ(row(from, "abm-s0")[6], "never");
  o.target_from = t / "lora-s0";  // a directory works too
  EXPECT_EQ(row(make_report(runs, o), "abm-s1")[6], "2");
  o.target_from = "nope";
  EXPECT_THROW(make_report(runs, o), Error);
  o.target_from.clear();
  o.target = 1.9;  // a fixed target wins
  EXPECT_EQ(row(make_report(runs, o), "abm-s0")[6], "3");
}

TEST(Report, RunWithoutSeedFallsBackToTheFirstRun) {
  test::TempDir t;
  const std::string a = write_run(t, "a", "kaiming", 0, {3, 2});
  const std::string b = t / "b";
  std::filesystem::create_directories(b);
  std::ofstream(b + "/metrics.jsonl") << "{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2, \"loss\": 1.5}\n";
  std::vector<RunCurves> runs = {read_run(a), read_run(b)};
  EXPECT_EQ(runs[1].seed, -1);
  ReportOptions o;
  o.at = {};
  o.smooth = 1;
  EXPECT_EQ(row(make_report(runs, o), "b")[4], "2.0000");
  EXPECT_EQ(row(make_report(runs, o), "b")[5], "2");
  std::ofstream(b + "/config.ini") << "seed = x1\n";
  EXPECT_THROW(read_run(b), Error);
}

}  // namespace
}  // namespace abm
