#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/check.h"
#include "core/log.h"
#include "core/runtime.h"

namespace abm {
namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

std::string hms(double s) {
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

Progress::Progress(int64_t total, int64_t log_every, int64_t first, std::string label)
    : total_(total), every_(std::max<int64_t>(1, log_every)), first_(first),
      label_(std::move(label)), tty_(::isatty(STDERR_FILENO)), t0_(now()) {}

Progress Progress::pass(int64_t total, std::string label, std::string unit) {
  Progress p(total, (total + 9) / 10, 0, std::move(label));
  p.unit_ = std::move(unit);
  return p;
}

void Progress::update(int64_t done, const std::string& status) {
  if (Runtime::rank() != 0) return;
  double el = now() - t0_;
  double eta = done > first_ ? el / double(done - first_) * double(total_ - done) : 0.0;
  const std::string sep = status.empty() ? "" : " ";
  if (tty_) {
    const int width = 24;
    int filled = static_cast<int>(width * double(done) / double(std::max<int64_t>(1, total_)));
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s[%s] %ld/%ld%s%s eta %s   ", label_.c_str(), bar.c_str(), done, total_,
                 sep.c_str(), status.c_str(), hms(eta).c_str());
    std::fflush(stderr);
  } else if (done % every_ == 0 || done == total_) {
    log_line(cat(label_, unit_, " ", done, "/", total_, sep, status, " elapsed ", hms(el), " eta ",
                 hms(eta)));
  }
}

void Progress::finish() {
  if (Runtime::rank() == 0 && tty_) std::fprintf(stderr, "\n");
}

}  // namespace abm
