#include "data/sampler.h"

#include <utility>

#include "core/check.h"

namespace abm {
namespace {

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Epoch e's shuffle seed: both inputs go through splitmix64 so nearby seeds and epochs give
// unrelated streams.
uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  uint64_t s = seed;
  uint64_t a = splitmix64(s);
  s = a ^ static_cast<uint64_t>(epoch);
  return splitmix64(s);
}

}  // namespace

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  ABM_CHECK(n > 0, "Rng::below(0)");
  // Accept r only in the top multiple-of-n part of [0, 2^64): then r % n is uniform.
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  for (;;) {
    uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[i], p[static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1))]);
  return p;
}

Sampler::Sampler(int64_t size, uint64_t seed, bool shuffle)
    : size_(size), seed_(seed), shuffle_(shuffle) {
  ABM_REQUIRE(size > 0, "cannot sample from an empty dataset");
}

int64_t Sampler::global_index(int64_t sample_no) const {
  ABM_CHECK(sample_no >= 0, "negative sample number ", sample_no);
  if (!shuffle_) return sample_no % size_;
  const int64_t e = sample_no / size_;
  if (e != epoch_) {
    perm_ = permutation(size_, epoch_seed(seed_, e));
    epoch_ = e;
  }
  return perm_[sample_no % size_];
}

void check_batch_split(int64_t global_batch, int64_t micro, int world, const std::string& batch_option,
                       const std::string& micro_option) {
  ABM_REQUIRE(global_batch > 0 && micro > 0, batch_option, " (", global_batch, ") and ",
              micro_option, " (", micro, ") must be positive");
  ABM_CHECK(world > 0, "world ", world);
  const int64_t unit = micro * world;
  if (global_batch % unit == 0) return;
  const int64_t lo = global_batch / unit * unit, hi = lo + unit;
  // A resumed run must keep its global batch (the data position counts in global
  // batches), so also say which micro-batches or rank counts keep this one.
  std::string keep;
  if (global_batch % world == 0) {
    for (int64_t m = 1; m <= global_batch / world; ++m)
      if (global_batch / world % m == 0) keep += cat(keep.empty() ? "" : "|", m);
    keep = cat(micro_option, " ", keep, " on ", world, " rank(s)");
  } else {
    for (int64_t w = 1; w <= global_batch; ++w)
      if (global_batch % w == 0 && global_batch / w % micro == 0) keep += cat(keep.empty() ? "" : "|", w);
    keep = keep.empty() ? cat("a ", micro_option, " dividing it")
                        : cat(keep, " rank(s) with ", micro_option, " ", micro);
  }
  throw Error(cat(batch_option, " ", global_batch, " is not a multiple of ", micro_option, " ", micro,
                  " x ", world, " data rank(s) = ", unit, "; nearest valid global batch: ",
                  lo > 0 ? cat(lo, " or ") : "", hi, "; to keep ", global_batch, ": ", keep));
}

std::vector<SampleRange> rank_slice(int64_t step, int64_t global_batch, int rank, int world,
                                    int64_t micro) {
  ABM_CHECK(world > 0 && rank >= 0 && rank < world, "rank ", rank, " of ", world);
  ABM_CHECK(global_batch > 0 && micro > 0 && global_batch % (micro * world) == 0, "global batch ",
            global_batch, " does not split into micro-batches of ", micro, " on ", world,
            " rank(s) (check_batch_split validates this)");
  const int64_t per_rank = global_batch / world;
  int64_t begin = step * global_batch + rank * per_rank;
  std::vector<SampleRange> out;
  for (int64_t m = 0; m < per_rank / micro; ++m, begin += micro) out.push_back({begin, begin + micro});
  return out;
}

SampleRange shard(int64_t n, int rank, int world) {
  ABM_CHECK(world > 0 && rank >= 0 && rank < world && n >= 0, "shard ", rank, " of ", world);
  return {n * rank / world, n * (rank + 1) / world};
}

}  // namespace abm
