// The MPI watchdog: a bound on how long one MPI operation may wait for its peers.
//
// When a node disappears, Open MPI's daemon tree notices killed processes, but a partition
// (a link down, a switch gone) leaves the survivors waiting in a collective forever: TCP
// does not notice a silent peer. So every blocking MPI call abmlora makes runs inside a
// MpiWatch, and a watchdog thread ends the process when one has waited longer than
// ABM_COMM_TIMEOUT_S seconds (default 600; 0 = never): one line naming this rank and host,
// the operation, how long it waited and the peers it was waiting for, then exit status 2
// ("failed", not 3 "requeue": the job's last checkpoint stays `latest`, and a resubmitted
// job continues from it with --resume auto).
//
// The thread makes no MPI calls (the library runs MPI_THREAD_FUNNELED): it only reads the
// clock and the slot the main thread fills. A legitimate wait longer than the bound (one
// rank writing a very large checkpoint while the others wait) needs a larger value.
#pragma once
#include <string>

namespace abm {

// ABM_COMM_TIMEOUT_S, validated (a number >= 0; throws abm::Error naming the variable; every
// command checks it at start).
double comm_timeout_s();

// Marks the calling thread as waiting in `op` (a string literal) on `peers` (for the
// message; must outlive the watch) until the MpiWatch ends. Not nested.
class MpiWatch {
 public:
  MpiWatch(const char* op, const std::string& peers);
  ~MpiWatch();
  MpiWatch(const MpiWatch&) = delete;
  MpiWatch& operator=(const MpiWatch&) = delete;
};

}  // namespace abm
