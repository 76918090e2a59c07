// The global, deterministic sample order (docs/design.md §4, §5).
//
// Training consumes "samples" (dataset rows: one example, or one packed row) numbered
// 0, 1, 2, ... across epochs. Sample number n is in epoch n / N at position n % N of that
// epoch's permutation, a seeded Fisher–Yates shuffle on our own PRNG (splitmix64-seeded
// xoshiro256**), so the order is the same on every standard library, machine and world
// size. Step s of a run with global batch G consumes samples [s*G, (s+1)*G); each data
// rank takes a contiguous block of G / world of them, in micro-batches. Resuming needs
// only the step (or the samples-consumed counter) and the seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace abm {

uint64_t splitmix64(uint64_t& state);  // advances state, returns the next output

// xoshiro256** (Blackman & Vigna), state filled from splitmix64(seed).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), unbiased (rejection sampling); n > 0

 private:
  uint64_t s_[4];
};

// Fisher–Yates permutation of [0, n) driven by Rng(seed).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

class Sampler {
 public:
  // size: dataset rows; shuffle=false gives the identity order every epoch (eval).
  Sampler(int64_t size, uint64_t seed, bool shuffle = true);

  int64_t size() const { return size_; }
  int64_t epoch_of(int64_t sample_no) const { return sample_no / size_; }
  // Dataset row of global sample number sample_no (>= 0). Keeps one epoch's permutation;
  // not thread-safe.
  int64_t global_index(int64_t sample_no) const;

 private:
  int64_t size_;
  uint64_t seed_;
  bool shuffle_;
  mutable int64_t epoch_ = -1;
  mutable std::vector<int64_t> perm_;  // [size_] permutation of epoch_
};

// Global sample numbers [begin, end) of one micro-batch.
struct SampleRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// The micro-batches rank `rank` of `world` data ranks processes at optimizer step `step`:
// global_batch / world consecutive samples starting at step*global_batch +
// rank*(global_batch/world), split into global_batch / (world*micro) ranges of `micro`.
// global_batch must be a multiple of micro*world (check_batch_split first).
std::vector<SampleRange> rank_slice(int64_t step, int64_t global_batch, int rank, int world,
                                    int64_t micro);

// Throws abm::Error unless global_batch is a positive multiple of micro*world; the message
// names the caller's options (e.g. "--global-batch", "--micro-batch") and the nearest
// valid values, and which micro-batches or rank counts keep this global batch.
void check_batch_split(int64_t global_batch, int64_t micro, int world, const std::string& batch_option,
                       const std::string& micro_option);

// An even split of n items (e.g. eval rows, in order) over `world` ranks: rank r gets a
// contiguous block; sizes differ by at most one. Sum the losses and counts over ranks.
SampleRange shard(int64_t n, int rank, int world);

}  // namespace abm
