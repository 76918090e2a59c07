// The owner of a run directory: `train` holds an exclusive flock(2) on RUN/.lock for its
// whole life (rank 0 only), so two jobs never write one run's config, checkpoints and
// metrics at once. The kernel drops the lock when the process dies (kill -9, node reboot),
// so a stale .lock file from a dead job never blocks; the file's text only says who held
// it last (host, pid, Slurm job, start time) for the refusal message.
//
// Network file systems: NFSv4 and Linux NFSv3 clients turn flock into a byte-range lock
// the server arbitrates, so it holds across nodes; Lustre does so only when mounted with
// -o flock (with -o localflock it holds on one node only, and without either flock fails:
// the error names the file system and ABM_RUN_LOCK=off, which skips the lock).
#pragma once
#include <string>

namespace abm {

class RunLock {
 public:
  RunLock() = default;
  // Creates dir if needed and takes the lock, or throws "DIR is in use by ..." naming the
  // holder. Call on one rank.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(RunLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RunLock& operator=(RunLock&& o) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace abm
