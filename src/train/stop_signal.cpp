#include "train/stop_signal.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "core/check.h"

namespace abm {
namespace {

// The only state the handler touches: lock-free, so storing from a handler is safe.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal flag must be lock-free");

constexpr int kStopSignals[] = {SIGUSR1, SIGTERM, SIGINT};

extern "C" void on_stop_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);  // keep the first signal's number
}

// Codes for the all-reduce (max): any signal outranks the time budget.
constexpr int64_t kBudgetCode = 1, kSignalBase = 1000;

}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  ABM_SYS_CHECK(sigemptyset(&sa.sa_mask));
  for (int sig : kStopSignals) ABM_SYS_CHECK(sigaction(sig, &sa, nullptr), signal_name(sig));
}

void restore_default_handlers() {
  for (int sig : kStopSignals) ::signal(sig, SIG_DFL);
}

int stop_signal_received() { return g_signal.load(); }
void clear_stop_signal() { g_signal.store(0); }

std::string signal_name(int sig) {
  switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "signal " + std::to_string(sig);
  }
}

TimeBudget::TimeBudget(double minutes, double margin_s, Clock::time_point start)
    : budget_s_(minutes > 0 ? minutes * 60 : 0), margin_s_(margin_s), start_(start) {}

void TimeBudget::record_step(double seconds) { step_s_ = std::max(step_s_, seconds); }
void TimeBudget::record_checkpoint(double seconds) { ckpt_s_ = seconds; }

double TimeBudget::remaining_s(Clock::time_point now) const {
  return budget_s_ - std::chrono::duration<double>(now - start_).count();
}

double TimeBudget::needed_s() const {
  return 2 * step_s_ + (ckpt_s_ >= 0 ? ckpt_s_ : step_s_) + margin_s_;
}

bool TimeBudget::nearly_spent(Clock::time_point now) const {
  return enabled() && remaining_s(now) < needed_s();
}

StopDecision agree_to_stop(Communicator& comm, const TimeBudget& budget) {
  const int sig = stop_signal_received();
  int64_t code = sig ? kSignalBase + sig : budget.nearly_spent() ? kBudgetCode : 0;
  at::Tensor t = at::tensor({code}, at::kLong);
  comm.all_reduce(t, ReduceOp::Max);
  code = t.item<int64_t>();
  StopDecision d;
  d.stop = code != 0;
  if (code >= kSignalBase) {
    d.reason = signal_name(int(code - kSignalBase));
  } else if (code == kBudgetCode) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "time budget (%.1f min left, %.1f needed)",
                  budget.remaining_s() / 60, budget.needed_s() / 60);
    d.reason = buf;
  }
  return d;
}

}  // namespace abm
