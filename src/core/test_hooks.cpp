#include "core/test_hooks.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

namespace abm::test_hooks {
namespace {

struct Hooks {
  int64_t stop_at_step = -1, stall_checkpoint_step = -1, kill_stage = -1;
  double step_sleep_s = 0;
};

const Hooks& hooks() {
  static const Hooks h = [] {
    Hooks t;
    if (const char* v = std::getenv("ABM_TEST_STOP_AT_STEP")) t.stop_at_step = std::atoll(v);
    if (const char* v = std::getenv("ABM_TEST_CKPT_STALL_STEP")) t.stall_checkpoint_step = std::atoll(v);
    if (const char* v = std::getenv("ABM_TEST_STEP_SLEEP_S")) t.step_sleep_s = std::atof(v);
    if (const char* v = std::getenv("ABM_TEST_KILL_STAGE")) t.kill_stage = std::atoll(v);
    return t;
  }();
  return h;
}

}  // namespace

void after_step(int64_t step, int rank) {
  const Hooks& h = hooks();
  if (h.stop_at_step == step && rank == 0) std::raise(SIGUSR1);
  if (h.step_sleep_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(h.step_sleep_s));
}

void before_publish(int64_t step) {
  if (hooks().stall_checkpoint_step == step) std::this_thread::sleep_for(std::chrono::seconds(600));
}

void after_teacher_batch(int stage) {
  if (hooks().kill_stage == stage) std::raise(SIGKILL);
}

}  // namespace abm::test_hooks
