// Stopping a run early and cleanly (docs/design.md §7): SIGUSR1 (Slurm's warning before the time
// limit, `--signal=B:USR1@<s>`), SIGTERM (scancel, preemption) and SIGINT (Ctrl-C) only
// set a flag; at the next step boundary all ranks agree (one all-reduce), write a
// checkpoint and exit with kExitRequeue. `--time-budget MINUTES` stops the same way before
// a wall-clock limit the scheduler would enforce with SIGKILL.
#pragma once
#include <chrono>
#include <string>

#include "comm/communicator.h"

namespace abm {

// Exit status "stopped early with a checkpoint written: requeue me and --resume auto".
// 0 = finished, 2 = bad input / fatal error (README), 3 = this.
constexpr int kExitRequeue = 3;

// Installs the handler for SIGUSR1, SIGTERM and SIGINT (idempotent). The handler stores
// the first signal's number in a lock-free atomic and does nothing else, so it is
// async-signal-safe, and a second signal during a checkpoint write cannot disturb the
// write (and SA_RESTART keeps it from interrupting system calls).
void install_stop_handlers();
void restore_default_handlers();  // tests, and before exec'ing other programs

int stop_signal_received();  // the first stop signal this process got, 0 = none
void clear_stop_signal();    // tests
std::string signal_name(int sig);  // "SIGUSR1"

// Wall-clock budget from construction. nearly_spent() when what is left no longer covers
// two more steps plus a checkpoint plus a margin: better to stop a step early than be
// killed mid-write by the scheduler.
class TimeBudget {
 public:
  using Clock = std::chrono::steady_clock;
  // minutes <= 0: no budget (never spent). margin_s: fixed slack for exit and teardown.
  explicit TimeBudget(double minutes = 0, double margin_s = 10, Clock::time_point start = Clock::now());
  void record_step(double seconds);        // keeps the slowest step so far (eval included)
  void record_checkpoint(double seconds);  // the last checkpoint write
  bool enabled() const { return budget_s_ > 0; }
  double remaining_s(Clock::time_point now = Clock::now()) const;
  double needed_s() const;  // 2 * step + checkpoint + margin
  bool nearly_spent(Clock::time_point now = Clock::now()) const;

 private:
  double budget_s_, margin_s_;
  Clock::time_point start_;
  double step_s_ = 0, ckpt_s_ = -1;  // ckpt_s_ < 0: not measured yet, assume one step
};

struct StopDecision {
  bool stop = false;
  std::string reason;  // "SIGUSR1", "time budget (3.1 min left, 2.4 needed)", ""
};

// Collective: every rank calls it at the same point of every step. True on all ranks as
// soon as any rank got a signal or any rank's budget is nearly spent (signals win in the
// reason, so all ranks report the same one).
StopDecision agree_to_stop(Communicator& comm, const TimeBudget& budget);

}  // namespace abm
