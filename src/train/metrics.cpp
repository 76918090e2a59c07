#include "train/metrics.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "core/check.h"
#include "core/json_text.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/runtime.h"

namespace abm {
namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string hms(double s) {
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  return buf;
}
}  // namespace

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

Progress::Progress(int64_t total, int64_t log_every, int64_t first, std::string label)
    : total_(total), every_(std::max<int64_t>(1, log_every)), first_(first),
      label_(std::move(label)), tty_(::isatty(STDERR_FILENO)), t0_(now()) {}

void Progress::update(int64_t done, const std::string& status) {
  if (Runtime::rank() != 0) return;
  double el = now() - t0_;
  double eta = done > first_ ? el / double(done - first_) * double(total_ - done) : 0.0;
  if (tty_) {
    const int width = 24;
    int filled = static_cast<int>(width * double(done) / double(std::max<int64_t>(1, total_)));
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s[%s] %ld/%ld %s eta %s   ", label_.c_str(), bar.c_str(), done, total_,
                 status.c_str(), hms(eta).c_str());
    std::fflush(stderr);
  } else if (done % every_ == 0 || done == total_) {
    log_line(cat(label_, "step ", done, "/", total_, " ", status, " elapsed ", hms(el), " eta ",
                 hms(eta)));
  }
}

void Progress::finish() {
  if (Runtime::rank() == 0 && tty_) std::fprintf(stderr, "\n");
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
