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
  std::vector<std::pair<int64_t, double>> loss;           // (step, train loss)
  std::vector<std::pair<int64_t, double>> eval_loss;      // (step, eval loss)
  std::vector<std::pair<int64_t, double>> info_loss;      // (step, relative total)
  double train_seconds = 0, abm_seconds = 0;              // sum of step_s; ABM teacher + steps
};

RunCurves read_run(const std::string& dir);  // throws naming the file on bad input

struct ReportOptions {
  std::vector<int64_t> at = {10, 50};  // fixed steps of the table
  double target = 0;                   // 0 = the first run's final (smoothed) loss
  int64_t smooth = 5;
  std::string out;                     // folder for PNGs and data ("" = no plots)
};

// The table as text (one line per run), and the PNGs under o.out when gnuplot exists
// (a missing gnuplot is a warning line in the returned text, not an error).
std::string make_report(const std::vector<RunCurves>& runs, const ReportOptions& o);

// Mean loss over the `smooth` steps ending at step k (fewer at the start).
double smoothed_loss(const RunCurves& r, int64_t k, int64_t smooth);
// First step whose smoothed loss <= target, or -1.
int64_t steps_to_reach(const RunCurves& r, double target, int64_t smooth);

}  // namespace abm
