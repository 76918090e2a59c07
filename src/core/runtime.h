// The process runtime: MPI start-up (also as a singleton without mpirun), who we are
// (rank, local rank, host), intra-op threads, and how a fatal error ends every rank.
#pragma once
#include <functional>
#include <string>

namespace abm {

// Thrown after an error was already reported collectively: unwind quietly, exit 2.
struct ReportedExit {
  int status;
};

class Runtime {
 public:
  // Initializes MPI (MPI_THREAD_FUNNELED). Safe to call once per process.
  static void init(int* argc, char*** argv);
  static void finalize();
  static bool initialized();

  static int rank();        // 0 before init
  static int size();        // 1 before init
  static int local_rank();  // rank among the processes of this node
  static int local_size();
  static const std::string& host();

  // Sets LibTorch intra-op threads: `requested` if > 0, else cores / local ranks (>= 1).
  // Returns the number set.
  static int set_threads(int requested);

  // Runs `step` on every rank, then agrees: if any rank threw abm::Error, rank 0 prints
  // the lowest failing rank's message once and every rank throws ReportedExit{2}. This
  // keeps bad input from leaving healthy ranks waiting in a later collective.
  static void agree(const std::function<void()>& step);

  // Ends the whole job after an unrecoverable error on this rank: prints the reason with
  // [rank@host] and calls MPI_Abort(2) when there are several ranks. common: every rank
  // meets the same error at the same point (CommonError): rank 0 alone reports it and
  // every rank finalizes and exits without an abort.
  [[noreturn]] static void abort_all(const std::string& reason, int status = 2,
                                     bool common = false);
};

}  // namespace abm
