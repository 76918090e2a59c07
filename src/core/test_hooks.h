// Every test-only hook of the product, behind one seam. Each is read once from the
// environment and, unset (the default), costs one branch. They make the stop, kill and
// requeue tests deterministic without mocking anything: the stop goes through the real
// signal handler and the all-rank agreement, the kill hits a real process.
//   ABM_TEST_STOP_AT_STEP=N     rank 0 raises SIGUSR1 after step N (as if Slurm signalled it)
//   ABM_TEST_STEP_SLEEP_S=X     sleep X s after each step (slow steps for the Slurm tests;
//                               the numbers are unchanged)
//   ABM_TEST_CKPT_STALL_STEP=N  the writer of the checkpoint of step N sleeps 600 s between
//                               its durable *.tmp and the rename (a window for kill -9)
//   ABM_TEST_KILL_STAGE=K       ABM stage K SIGKILLs itself after a teacher micro-batch (a
//                               dead rank must end the job, not block its neighbours)
#pragma once
#include <cstdint>

namespace abm::test_hooks {

// The trainer, after step `step` on rank `rank`.
void after_step(int64_t step, int rank);
// The checkpoint writer, after the durable temporary file of step `step`, before publishing.
void before_publish(int64_t step);
// ABM stage `stage`, after one teacher micro-batch.
void after_teacher_batch(int stage);

}  // namespace abm::test_hooks
