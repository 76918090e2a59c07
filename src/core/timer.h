// Wall-clock timing and process memory, for benchmarks and metrics.
#pragma once
#include <sys/resource.h>

#include <chrono>
#include <cstdint>

namespace abm {

class Timer {
 public:
  Timer() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// Peak resident set size of this process so far, in bytes.
inline int64_t peak_rss_bytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

}  // namespace abm
