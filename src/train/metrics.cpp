#include "train/metrics.h"

#include <cstring>

#include "core/check.h"
#include "core/json_text.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/runtime.h"

namespace abm {

MetricsLog::MetricsLog(const std::string& path) {
  if (Runtime::rank() != 0) return;
  out_.open(path, std::ios::app);
  ABM_REQUIRE(out_, path, ": cannot open for writing (", std::strerror(errno), ")");
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!out_.is_open()) return;
  out_ << record.dump() << "\n";
  out_.flush();
}

void truncate_metrics(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;  // nothing yet
  std::string kept, line;
  int64_t dropped = 0;
  while (std::getline(in, line)) {
    check_json_depth(line, path);
    nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (last_step >= 0 && r.is_object() && r.contains("step") && r["step"].is_number_integer() &&
        r["step"].get<int64_t>() <= last_step) {
      kept += line + "\n";
    } else {
      ++dropped;
    }
  }
  in.close();
  if (dropped == 0) return;
  write_text_atomic(path, kept);
  log_line(cat("metrics: dropped ", dropped, " record(s) of ", path,
               last_step < 0 ? " (a fresh start)" : cat(" after step ", last_step, " (resume)")));
}

void for_each_metrics_record(const std::string& run_dir,
                             const std::function<void(const nlohmann::json&, const std::string&)>& f) {
  const std::string path = run_dir + "/metrics.jsonl";
  std::ifstream in(path);
  ABM_REQUIRE(in.good(), path, ": cannot read (is ", run_dir, " a run directory?)");
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    const std::string where = cat(path, ":", line_no);
    f(parse_json(line, where), where);
  }
}

std::string run_name(const std::string& run_dir) {
  std::string d = run_dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d.substr(d.find_last_of('/') + 1);
}

}  // namespace abm
