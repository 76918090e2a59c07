// abmlora report RUN...: the comparison table of training runs (initial loss, loss at
// fixed steps, steps to reach a target loss, information loss at step 1, final eval loss,
// wall time including the ABM stage) and loss / information-loss curves as PNG.
// abmlora report --scaling RUN...|SWEEP_DIR: tokens/s and efficiency over rank counts
// (train/scaling_report.h).
#include <iostream>

#include "abm/run_report.h"
#include "cli/commands.h"
#include "core/check.h"
#include "core/text.h"
#include "core/fs.h"
#include "core/options.h"
#include "core/runtime.h"
#include "train/scaling_report.h"

namespace abm {

int cmd_report(int argc, char** argv) {
  std::vector<std::string> runs;
  std::string at = "10,50", out;
  bool scaling = false;
  ReportOptions ro;
  Options opts("report", "Compare training runs: a table and PNG curves.");
  opts.add()("runs", po::value(&runs)->multitoken()->required(), "run directories (positional)")
      ("at", po::value(&at)->default_value(at), "fixed steps for the table, comma list")
      ("target", po::value(&ro.target)->default_value(0.0), "one target loss for \"steps to target\" (0 = per run: the final loss of --target-from, else of the LoRA run with the same seed, else of the first run)")
      ("target-from", po::value(&ro.target_from)->default_value(""), "a run (directory or name) whose final loss is every run's target")
      ("smooth", po::value(&ro.smooth)->default_value(ro.smooth), "trailing window of steps for losses")
      ("out", po::value(&out)->default_value(""), "folder for PNGs, data and table.tsv (default: RUN1/../report; with --scaling and a sweep directory: SWEEP/report)")
      ("scaling", po::bool_switch(&scaling), "scaling table instead: tokens/s, speedup and efficiency vs the run with the fewest ranks, and scaling.png (RUN... or a slurm/scaling_sweep.sh directory)");
  opts.positional("runs", -1);
  if (!opts.parse(argc, argv)) return 0;
  if (scaling) {
    std::vector<ScalingRun> points;
    Runtime::agree([&] {
      for (const std::string& d : scaling_run_dirs(runs)) points.push_back(read_scaling_run(d));
    });
    if (Runtime::rank() != 0) return 0;
    const bool sweep = runs.size() == 1 && points.size() > 1;
    std::cout << scaling_report(points, !out.empty() ? out : sweep ? runs.front() + "/report"
                                                              : runs.front() + "/../report");
    return 0;
  }
  std::vector<RunCurves> curves;
  Runtime::agree([&] {
    ABM_REQUIRE(ro.smooth > 0, "--smooth must be positive");
    ro.at.clear();
    for (const std::string& s : split_commas(at)) {
      try { ro.at.push_back(std::stoll(s)); } catch (...) { throw Error("--at: \"" + s + "\" is not a step"); }
    }
    for (auto& r : runs) curves.push_back(read_run(r));
    for (size_t i = 0; i < curves.size(); ++i) target_loss(curves, i, ro);  // --target-from names a run
  });
  ro.out = out.empty() ? runs.front() + "/../report" : out;
  if (Runtime::rank() != 0) return 0;
  std::string table = make_report(curves, ro);
  std::cout << table;
  write_text_atomic(ro.out + "/table.tsv", table);
  return 0;
}

}  // namespace abm
