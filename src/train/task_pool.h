// Plain worker threads that live as long as the process, for work split into independent
// tasks (attention's (sequence, kv head) pairs). Each task runs ATen and BLAS single-threaded.
//
// Why not at::parallel_for: BLAS called inside an OpenMP parallel region collapses when
// cores are shared (OpenMP's spin-waiting threads compete with the working ones; LibTorch's
// own 2-thread bmm measured 0.5 GFLOP/s against 32 GFLOP/s single-threaded on this machine
// under load). Why threads that stay: a fresh thread pays the BLAS's per-thread set-up on its
// first GEMM (measured with OpenBLAS), and attention runs twice per layer per step; with
// threads made per call the second thread started its first task ~15 ms late and 2 threads
// ran no faster than 1.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <dlfcn.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace abm {

// This thread runs ATen ops and BLAS calls single-threaded while alive: it sets OpenMP's
// per-thread thread count (the ICV that LibTorch's intra-op parallelism reads), and MKL's
// thread-local one (MKL, inside the official LibTorch, otherwise follows the global count
// at::set_num_threads gave it, so a GEMM in a task would split its sums over threads and
// change their last bits). Both are reached through the libraries LibTorch already loaded.
class SingleThreaded {
 public:
  SingleThreaded() {
    at::get_num_threads();  // LibTorch's lazy per-thread init first, so it cannot undo ours
    if (set() && get()) {
      saved_ = get()();
      set()(1);
    }
    if (mkl_local()) saved_mkl_ = mkl_local()(1);
  }
  ~SingleThreaded() {
    if (saved_ > 0) set()(saved_);
    if (mkl_local()) mkl_local()(saved_mkl_);
  }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  using Set = void (*)(int);
  using Get = int (*)();
  static Set set() {
    static Set f = reinterpret_cast<Set>(::dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    return f;
  }
  static Get get() {
    static Get f = reinterpret_cast<Get>(::dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    return f;
  }
  // Returns the previous thread-local count (0: none, the global one applies). The C entry
  // is the mixed-case name (mkl_service.h maps to it); the lower-case ones are Fortran's.
  using SetLocal = int (*)(int);
  static SetLocal mkl_local() {
    static SetLocal f = reinterpret_cast<SetLocal>(::dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
    return f;
  }
  int saved_ = 0, saved_mkl_ = 0;
};

class TaskPool {
 public:
  // fn(task) for every task in [0, n), on at::get_num_threads() threads (the caller is one
  // of them) taking tasks from a shared counter. Tasks see the caller's thread-local ATen
  // state (grad mode above all), as at::parallel_for's do. The first exception a task
  // throws is rethrown here after every thread has stopped taking tasks.
  static void run(int64_t n, const std::function<void(int64_t)>& fn) {
    // Never destroyed: its idle threads just end with the process (a fatal error may call
    // exit() from any thread, and a joining destructor would then wait on itself).
    static TaskPool* pool = new TaskPool;
    pool->run_on(static_cast<int>(std::min<int64_t>(at::get_num_threads(), n)), n, fn);
  }

 private:
  void run_on(int threads, int64_t n, const std::function<void(int64_t)>& fn) {
    if (threads <= 1) {
      SingleThreaded one;
      for (int64_t t = 0; t < n; ++t) fn(t);
      return;
    }
    std::lock_guard<std::mutex> caller(run_mu_);  // one job at a time
    while (static_cast<int>(workers_.size()) < threads - 1) workers_.emplace_back([this] { loop(); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      state_ = at::ThreadLocalState();
      n_ = n;
      next_.store(0);
      error_ = nullptr;
      helpers_ = threads - 1;
      busy_ = helpers_;
      ++job_;
    }
    wake_.notify_all();
    {
      SingleThreaded one;
      work();
    }
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return busy_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  void loop() {
    SingleThreaded one;  // for the thread's whole life
    uint64_t seen = 0;
    for (;;) {  // until the process ends
      {
        std::unique_lock<std::mutex> lock(mu_);
        // Only as many workers as the job asked for join it (a smaller job than the pool).
        wake_.wait(lock, [&] { return job_ != seen && helpers_ > 0; });
        seen = job_;
        --helpers_;
      }
      {
        at::ThreadLocalStateGuard caller(state_);
        work();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  void work() {
    try {
      for (int64_t t; (t = next_.fetch_add(1)) < n_;) (*fn_)(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_);
    }
  }

  std::mutex run_mu_, mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
  at::ThreadLocalState state_;  // the caller's, for the workers
  uint64_t job_ = 0;
  int helpers_ = 0, busy_ = 0;
};

}  // namespace abm
