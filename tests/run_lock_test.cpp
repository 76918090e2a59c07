// The run directory's owner (core/run_lock.h): a second holder is refused with the first's
// host and pid, a killed holder's lock is free again (the kernel drops it), a stale .lock
// file from a dead job does not block, and two real `train` jobs on one --out: the second
// exits 2 with one line before writing anything into the run directory.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "core/check.h"
#include "core/run_lock.h"
#include "test_util.h"

namespace {

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// In a forked child: 0 = got the lock, 1 = refused naming `holder`, 2 = other error.
int try_lock_in_child(const std::string& dir, const std::string& holder) {
  pid_t pid = fork();
  if (pid == 0) {
    int code = 2;
    try {
      abm::RunLock l(dir);
      code = 0;
    } catch (const abm::Error& e) {
      std::string m = e.what();
      code = m.find("is in use by another job") != std::string::npos &&
                     m.find(holder) != std::string::npos
                 ? 1
                 : 2;
    }
    _exit(code);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

TEST(RunLock, SecondHolderIsRefusedWithTheFirstsPid) {
  abm::test::TempDir tmp;
  const std::string dir = tmp / "run";
  {
    abm::RunLock mine(dir);
    const std::string pid = "pid " + std::to_string(getpid());
    EXPECT_NE(slurp(dir + "/.lock").find(pid), std::string::npos) << slurp(dir + "/.lock");
    EXPECT_EQ(try_lock_in_child(dir, pid), 1);
  }
  EXPECT_EQ(try_lock_in_child(dir, ""), 0) << "released when the holder ends";
}

TEST(RunLock, AKilledHoldersLockIsFree) {
  abm::test::TempDir tmp;
  const std::string dir = tmp / "run";
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = fork();
  if (holder == 0) {
    abm::RunLock l(dir);
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_EQ(try_lock_in_child(dir, "pid " + std::to_string(holder)), 1);
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  EXPECT_EQ(try_lock_in_child(dir, ""), 0);
}

TEST(RunLock, AStaleLockFileDoesNotBlock) {
  abm::test::TempDir tmp;
  const std::string dir = tmp / "run";
  abm::test::run("mkdir -p " + dir + " && echo 'host gone, pid 999999, since 2020' > " + dir + "/.lock");
  abm::RunLock l(dir);
  EXPECT_NE(slurp(dir + "/.lock").find("pid " + std::to_string(getpid())), std::string::npos);
}

// Two real jobs, started together on one --out: one trains, the other is refused before it
// writes anything (config.ini keeps the first job's seed).
TEST(RunLock, TwoTrainJobsOnOneRunDirectory) {
  abm::test::TempDir tmp;
  const std::string data = tmp / "d.jsonl";
  abm::test::write_token_rows(data, 16, 0, 8);
  const std::string model = std::string(ABM_SOURCE_DIR) + "/models/default";
  auto train = [&](int seed) {
    return abm::cat("ABM_TEST_STEP_SLEEP_S=1 ", ABM_BINARY, " train --model ", model,
                              " --data ", data, " --out ", tmp / "same", " --steps 4",
                              " --global-batch 2 --max-length 16 --dtype fp32 --threads 1",
                              " --checkpoint-every 1 --resume auto --seed ", seed);
  };
  const std::string cmd = "(" + train(0) + " > " + (tmp / "a.log") + " 2>&1; echo $? > " +
                          (tmp / "a.rc") + ") & sleep 0; while ! grep -q pid " + (tmp / "same/.lock") +
                          " 2>/dev/null; do sleep 0.1; done; " + train(1) + " 2>&1; echo rc=$?; wait";
  abm::test::RunResult r = abm::test::run(cmd);
  EXPECT_NE(r.output.find("rc=2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is in use by another job"), std::string::npos) << r.output;
  size_t lines = 0;
  for (size_t p = r.output.find("abmlora: error:"); p != std::string::npos;
       p = r.output.find("abmlora: error:", p + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << r.output;
  EXPECT_EQ(slurp(tmp / "a.rc"), "0\n") << slurp(tmp / "a.log");
  EXPECT_NE(slurp(tmp / "same/config.ini").find("seed = 0"), std::string::npos);
}
