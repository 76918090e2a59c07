// The comparison report of training runs (`abmlora report RUN...`): reads each run's
// metrics.jsonl (and abm.json when the run started with ABM) and makes the table the ABM
// issue asks for plus gnuplot PNGs of the loss and information-loss curves.
//
// Per-step losses are noisy, so "loss at step k", "final loss" and "steps to reach the
// target" use the mean over a trailing window of `smooth` steps.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace abm {

struct RunCurves {
  std::string dir, name, init;                            // name = the folder's basename
  int64_t seed = -1;                                      // RUN/config.ini's seed (-1: none)
  std::vector<std::pair<int64_t, double>> loss;           // (step, train loss)
  std::vector<std::pair<int64_t, double>> eval_loss;      // (step, eval loss)
  std::vector<std::pair<int64_t, double>> info_loss;      // (step, relative total)
  double train_seconds = 0;                               // sum of step_s
  double init_seconds = 0;  // RUN/init.json (SVDs, ABM with its teacher), else abm.json's
};

RunCurves read_run(const std::string& dir);  // throws naming the file on bad input

// The "steps to" target of each run, in this order: a fixed --target loss; the final
// (smoothed) loss of --target-from RUN; else the final loss of the LoRA (kaiming) run with
// the same seed; else the first run's final loss.
struct ReportOptions {
  std::vector<int64_t> at = {10, 50};  // fixed steps of the table
  double target = 0;                   // > 0: one fixed target for every run
  std::string target_from;             // a run's directory or name among the runs
  int64_t smooth = 5;
  std::string out;                     // folder for PNGs and data ("" = no plots)
};

// The table as text (one line per run), and the PNGs under o.out when gnuplot exists
// (a missing gnuplot is a warning line in the returned text, not an error).
std::string make_report(const std::vector<RunCurves>& runs, const ReportOptions& o);

// Mean loss over the `smooth` steps ending at step k (fewer at the start).
double smoothed_loss(const RunCurves& r, int64_t k, int64_t smooth);
// The target loss of runs[i] under o's rules (above); throws when --target-from names no run.
double target_loss(const std::vector<RunCurves>& runs, size_t i, const ReportOptions& o);
// First step whose smoothed loss <= target, or -1.
int64_t steps_to_reach(const RunCurves& r, double target, int64_t smooth);

}  // namespace abm
