// The NCCL watchdog: a thread that watches every enqueued collective (a CUDA event
// recorded after it) and the communicator's asynchronous error. When an operation has not
// finished within the timeout, or NCCL reports an async error (a peer died, a network
// failure), it aborts the communicator — which makes the stuck kernels return — and keeps
// a one-line message naming the stuck operation; the rank's next call into the
// communicator throws it. If nobody picks the error up within a grace period (the main
// thread is blocked elsewhere), the watchdog prints it and ends the process (exit 2), so a
// job never hangs.
#pragma once
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace abm {

class NcclWatchdog {
 public:
  NcclWatchdog(ncclComm_t comm, double timeout_s, std::string where);
  ~NcclWatchdog();
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // Records an event on `stream` after the operation just enqueued, named `what`.
  void track(cudaStream_t stream, const std::string& what);
  // Blocks until everything enqueued on `stream` so far has finished (polling an event,
  // so the watchdog can abort underneath), then throws the recorded error if there is one.
  void wait_all(cudaStream_t stream);
  // Throws the recorded error (abm::Error, one line) if the watchdog fired.
  void rethrow();
  bool aborted() const;

 private:
  struct Pending {
    cudaEvent_t done;
    std::string what;
    std::chrono::steady_clock::time_point start;
  };
  void loop();
  void fire(const std::string& message);  // holds mu_

  ncclComm_t comm_;
  double timeout_s_;
  std::string where_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::string error_;
  bool stop_ = false, error_taken_ = false;
  std::thread thread_;
};

}  // namespace abm
