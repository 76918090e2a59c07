// All-reduce bandwidth in nccl-tests' convention, for any backend: for each message size,
// a correctness pass (rank-dependent integers whose sum is exact) and a timed loop.
//   algbw = bytes / time;   busbw = algbw * 2(n-1)/n   (what each link carries in a ring)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace abm {

// One backend's buffer of fp32 elements on its device.
class AllReduceTarget {
 public:
  virtual ~AllReduceTarget() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;     // "mpi", "nccl"
  virtual void resize(int64_t count) = 0;   // buffer of `count` fp32
  // Fills element i with (rank + 1) * (i % 13 + 1), all-reduces once, and returns how
  // many elements differ from n(n+1)/2 * (i % 13 + 1) (exact in fp32).
  virtual int64_t check() = 0;
  virtual void all_reduce() = 0;        // in place, sum; may be asynchronous
  virtual void sync() = 0;              // waits for every launched all-reduce
  virtual double max_over_ranks(double v) = 0;
  virtual void barrier() = 0;
};

struct AllReduceRow {
  int64_t bytes = 0, count = 0;
  int iters = 0;
  double time_us = 0;              // per all-reduce, slowest rank
  double algbw = 0, busbw = 0;     // GB/s (1e9 bytes)
  int64_t wrong = 0;               // most wrong elements on any rank
};

struct AllReduceBenchOptions {
  int64_t min_bytes = 1024, max_bytes = int64_t{256} << 20;
  int64_t step_factor = 4;   // size multiplier between rows
  int64_t iters = 0;         // timed all-reduces per size; 0 = adaptive (~1 GiB moved, 3..200)
};

// Runs every size on every rank (collective). Rows are returned on every rank.
std::vector<AllReduceRow> run_allreduce_bench(AllReduceTarget& target,
                                              const AllReduceBenchOptions& opts);
std::string allreduce_table(const std::vector<AllReduceRow>& rows, int ranks,
                            const std::string& backend);

// The MPI backend over a CPU tensor (comm/mpi_communicator.h).
std::unique_ptr<AllReduceTarget> make_mpi_allreduce_target();
// The NCCL backend over raw device memory (nccl_allreduce_target.cpp; only in builds
// with ABM_WITH_NCCL). Errors "no CUDA device" without a GPU.
std::unique_ptr<AllReduceTarget> make_nccl_allreduce_target();

}  // namespace abm
