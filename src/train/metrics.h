// Run monitoring on rank 0: metrics.jsonl (one JSON object per step or event, appended so
// a resumed run continues the same file), and the reader the reports share. The progress
// display is core/progress.h.
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/progress.h"

namespace abm {

class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path);  // rank 0 opens; other ranks no-op
  void write(const nlohmann::json& record);      // one line, flushed

 private:
  std::ofstream out_;
};

// Rank 0, before a run (re)opens its metrics.jsonl: keeps the records with "step" <=
// last_step (none when last_step < 0) and drops the rest, including a line torn by a kill.
// A resumed run then continues the curve from its checkpoint without a gap or duplicate.
void truncate_metrics(const std::string& path, int64_t last_step);

// The reader the reports share: f(record, where) for each non-empty line of
// RUN_DIR/metrics.jsonl, parsed; where = "PATH:LINE" for messages. Missing file or a
// line that is not JSON: abm::Error naming it.
void for_each_metrics_record(const std::string& run_dir,
                             const std::function<void(const nlohmann::json&, const std::string&)>& f);
// A run's name in reports: its directory's last component ("runs/abm-1/" -> "abm-1").
std::string run_name(const std::string& run_dir);

}  // namespace abm
