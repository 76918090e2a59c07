// Test-only hooks of the trainer, read once from the environment. They make the stop,
// kill and requeue tests deterministic without mocking anything: the stop goes through the
// real signal handler and the all-rank agreement, the kill hits a real writer process.
//   ABM_TEST_STOP_AT_STEP=N     rank 0 raises SIGUSR1 after step N (as if Slurm signalled it)
//   ABM_TEST_STEP_SLEEP_S=X     sleep X s after each step (slow steps for the Slurm test;
//                               the numbers are unchanged)
//   ABM_TEST_CKPT_STALL_STEP=N  the writer of the checkpoint of step N sleeps 600 s between
//                               its durable *.tmp and the rename (a window for kill -9)
// Unset (the default) they cost one branch per step.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>

namespace abm {

struct TestHooks {
  int64_t stop_at_step = -1, stall_checkpoint_step = -1;
  double step_sleep_s = 0;

  static const TestHooks& get() {
    static const TestHooks h = [] {
      TestHooks t;
      auto env = [](const char* name) -> const char* { return std::getenv(name); };
      if (const char* v = env("ABM_TEST_STOP_AT_STEP")) t.stop_at_step = std::atoll(v);
      if (const char* v = env("ABM_TEST_CKPT_STALL_STEP")) t.stall_checkpoint_step = std::atoll(v);
      if (const char* v = env("ABM_TEST_STEP_SLEEP_S")) t.step_sleep_s = std::atof(v);
      return t;
    }();
    return h;
  }
};

}  // namespace abm
