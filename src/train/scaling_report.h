// The scaling report (`abmlora report --scaling RUN...`, docs/usage.md): the same short run at
// several rank/node counts (slurm/scaling_sweep.sh) as a table of throughput and parallel
// efficiency against the smallest run, plus a gnuplot PNG.
//
// Throughput of a run is the median of its per-step tokens/s (metrics.jsonl, positions of
// the global batch per second of step time) after the first step: the first step pays for
// allocations and page faults, and the median ignores a step slowed by a neighbour.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace abm {

struct ScalingRun {
  std::string dir, name;
  int64_t ranks = 0, nodes = 0, steps = 0;  // from the step records ("ranks", "nodes")
  double tokens_per_s = 0;                  // median after the first step
};

// A run directory, or a sweep directory (no metrics.jsonl of its own): its subdirectories
// that have one, in name order. Errors name the directory.
std::vector<std::string> scaling_run_dirs(const std::vector<std::string>& args);
ScalingRun read_scaling_run(const std::string& dir);

// Sorted by ranks; the table (TSV: run, nodes, ranks, steps, tokens/s, speedup,
// efficiency) with efficiency = (tokens/s per rank) / (that of the smallest run). Writes
// out/scaling.tsv and, when gnuplot exists, out/scaling.png (a missing gnuplot is a warning
// line in the returned text).
std::string scaling_report(std::vector<ScalingRun> runs, const std::string& out);

}  // namespace abm
