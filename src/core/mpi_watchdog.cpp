#include "core/mpi_watchdog.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "core/check.h"

namespace abm {
namespace {

constexpr double kDefaultTimeoutS = 600;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The one slot the main thread fills (MPI is called from one thread) and the watchdog reads.
struct Slot {
  std::atomic<double> since{0};  // 0 = no operation in flight
  std::atomic<const char*> op{nullptr};
  std::atomic<const std::string*> peers{nullptr};
};

Slot& slot() {
  static Slot* s = new Slot;  // never destroyed: the detached thread may outlive main()
  return *s;
}

// launch/run's ABM_EXIT_FILE (see src/cli/main.cpp) gets "2" when it exists here, i.e. on
// the launching node: the launcher itself may never return when a node is unreachable
// (mpirun and srun wait for its daemons), and launch/run ends it once this status is in.
void tell_launcher() {
  const char* path = std::getenv("ABM_EXIT_FILE");
  if (!path || !*path) return;
  int fd = ::open(path, O_WRONLY | O_TRUNC);  // no O_CREAT: other nodes leave no files
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, "2\n", 2);
  (void)ignored;
  ::close(fd);
}

[[noreturn]] void fire(double timeout, double waited) {
  Slot& s = slot();
  const std::string* peers = s.peers.load();
  std::fprintf(stderr,
               "abmlora: error: [%s] MPI %s waited %.0f s for %s without an answer "
               "(ABM_COMM_TIMEOUT_S=%g): a node or link is gone; exiting with status 2\n",
               where().c_str(), s.op.load(), waited, peers ? peers->c_str() : "its peers",
               timeout);
  std::fflush(stderr);
  tell_launcher();
  std::_Exit(2);
}

// Started once, on the first watch, only when the bound is on.
void start_thread(double timeout) {
  static std::once_flag once;
  std::call_once(once, [timeout] {
    // Checks ten times per bound, at most every 100 ms: fires within 10 % of it.
    double period = std::min(0.1, timeout / 10);
    std::thread([timeout, period] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::duration<double>(period));
        double since = slot().since.load();
        if (since > 0 && now_s() - since > timeout) fire(timeout, now_s() - since);
      }
    }).detach();
  });
}

}  // namespace

double comm_timeout_s() {
  static const double value = [] {
    const char* env = std::getenv("ABM_COMM_TIMEOUT_S");
    if (!env || !*env) return kDefaultTimeoutS;
    char* end = nullptr;
    double v = std::strtod(env, &end);
    ABM_REQUIRE(end && *end == '\0' && std::isfinite(v) && v >= 0,
                "ABM_COMM_TIMEOUT_S must be a number of seconds >= 0 (0 = no bound), got '",
                env, "'");
    return v;
  }();
  return value;
}

MpiWatch::MpiWatch(const char* op, const std::string& peers) {
  double timeout = 0;
  try {
    timeout = comm_timeout_s();
  } catch (const Error&) {
    return;  // reported by the start-up agreement (src/cli/main.cpp), which runs unwatched
  }
  if (timeout <= 0) return;
  start_thread(timeout);
  Slot& s = slot();
  s.op = op;
  s.peers = &peers;
  s.since = now_s();
}

MpiWatch::~MpiWatch() { slot().since = 0; }

}  // namespace abm
