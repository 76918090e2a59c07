// Progress of a long phase on rank 0: a bar with an ETA on a terminal, plain lines in
// batch logs (Slurm output files, which users read to decide whether a job is alive).
// Training and the ABM steps print a line every --log-every steps; a pass over
// micro-batches or rows (the ABM teacher pass and reports, the token-cache build) a line
// at every tenth of the way.
#pragma once
#include <cstdint>
#include <string>

namespace abm {

class Progress {
 public:
  // label prefixes every line ("abm: " for the ABM steps).
  Progress(int64_t total, int64_t log_every, int64_t first = 0, std::string label = "");
  // A pass over `total` units ("micro-batch", "row"): lines at every tenth.
  static Progress pass(int64_t total, std::string label, std::string unit);
  // Called after each step with a short status ("loss 2.31 lr 2e-4 ...").
  void update(int64_t step_done, const std::string& status = "");
  void finish();

 private:
  int64_t total_, every_, first_;
  std::string label_, unit_ = "step";
  bool tty_;
  double t0_;
};

// "1:02:03" (hours unbounded).
std::string hms(double seconds);

}  // namespace abm
