#include "comm/nccl_watchdog.h"

#include <cstdio>
#include <cstdlib>

#include "comm/nccl_check.h"

namespace abm {
namespace {
constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr double kGraceS = 30;  // after firing, how long the main thread has to notice
}  // namespace

NcclWatchdog::NcclWatchdog(ncclComm_t comm, double timeout_s, std::string where)
    : comm_(comm), timeout_s_(timeout_s), where_(std::move(where)), thread_([this] { loop(); }) {}

NcclWatchdog::~NcclWatchdog() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (Pending& p : pending_) cudaEventDestroy(p.done);
}

void NcclWatchdog::track(cudaStream_t stream, const std::string& what) {
  rethrow();
  cudaEvent_t ev;
  ABM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  ABM_CUDA_CHECK(cudaEventRecord(ev, stream));
  std::lock_guard<std::mutex> lk(mu_);
  pending_.push_back({ev, what, std::chrono::steady_clock::now()});
}

void NcclWatchdog::wait_all(cudaStream_t stream) {
  rethrow();
  // Our own event (the watchdog thread destroys the tracked ones), polled with short
  // sleeps: a benchmark's synchronize must not cost the watchdog's 20 ms poll period.
  cudaEvent_t ev;
  ABM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  ABM_CUDA_CHECK(cudaEventRecord(ev, stream));
  cudaError_t q;
  while ((q = cudaEventQuery(ev)) == cudaErrorNotReady && !aborted())
    std::this_thread::sleep_for(std::chrono::microseconds(5));
  cudaEventDestroy(ev);
  rethrow();
  ABM_CUDA_CHECK(q);
}

void NcclWatchdog::rethrow() {
  std::lock_guard<std::mutex> lk(mu_);
  if (error_.empty()) return;
  error_taken_ = true;
  throw Error(error_);
}

bool NcclWatchdog::aborted() const {
  std::lock_guard<std::mutex> lk(mu_);
  return !error_.empty();
}

void NcclWatchdog::fire(const std::string& message) {
  error_ = message;
  // Aborting makes every kernel of this communicator return, so a blocked
  // cudaStreamSynchronize elsewhere wakes up too.
  ncclCommAbort(comm_);
  std::fprintf(stderr, "[%s] %s\n", where_.c_str(), message.c_str());
  cv_.notify_all();
}

void NcclWatchdog::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  std::chrono::steady_clock::time_point fired;
  while (!stop_) {
    cv_.wait_for(lk, kPoll);
    if (!error_.empty()) {
      // Nobody took the error: the main thread is stuck outside this communicator.
      if (!error_taken_ &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - fired).count() > kGraceS) {
        std::fprintf(stderr, "[%s] exiting: %s\n", where_.c_str(), error_.c_str());
        std::_Exit(2);
      }
      continue;
    }
    while (!pending_.empty() && cudaEventQuery(pending_.front().done) == cudaSuccess) {
      cudaEventDestroy(pending_.front().done);
      pending_.pop_front();
    }
    if (pending_.empty()) {
      cv_.notify_all();
      continue;
    }
    const Pending& p = pending_.front();
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    double age = std::chrono::duration<double>(std::chrono::steady_clock::now() - p.start).count();
    if (async != ncclSuccess && async != ncclInProgress) {
      fire(cat("NCCL ", p.what, " failed: ", ncclGetErrorString(async),
               "; communicator aborted"));
      fired = std::chrono::steady_clock::now();
    } else if (age > timeout_s_) {
      fire(cat("NCCL ", p.what, " did not finish within ", timeout_s_,
               " s (ABM_NCCL_TIMEOUT_S); communicator aborted"));
      fired = std::chrono::steady_clock::now();
    }
  }
}

}  // namespace abm
