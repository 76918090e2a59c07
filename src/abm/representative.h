// The representative batch of ABM (docs/design.md §5 phase 2): `samples` training examples drawn by
// seed on rank 0 and broadcast (ids and lengths) to every rank, so all ranks and stages
// see the same sequences even if their local data files differ in order.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "data/dataset.h"
#include "data/sampler.h"

namespace abm {

struct RepresentativeBatch {
  std::vector<int64_t> indices;            // [N] example indices in the training set
  std::vector<std::vector<int64_t>> ids;   // [N][len_k] token ids, len_k <= max_length
  int64_t size() const { return static_cast<int64_t>(ids.size()); }
  int64_t tokens() const;                  // sum of lengths
  int64_t tokens(const std::vector<int64_t>& which) const;  // of samples `which`
};

// Draws min(samples, examples) distinct examples of `train` (a seeded permutation's
// prefix), cut to max_length tokens. Only rank 0 reads `train`; the result is broadcast.
RepresentativeBatch draw_representative(const Dataset& train, int64_t samples,
                                        int64_t max_length, uint64_t seed, Communicator& comm);

// ABM steps cycle through the batch: global sample numbers [r.begin, r.end) are
// samples n mod size() of it.
std::vector<int64_t> cycled_samples(const SampleRange& r, int64_t size);

// Samples k of the batch as right-padded tensors: ids [b, T] int64 (pad 0) and
// real [b, T] bool (false at padding), T = the longest of them.
struct PaddedSamples {
  at::Tensor ids, real;
};
PaddedSamples pad_samples(const RepresentativeBatch& rb, const std::vector<int64_t>& which);

}  // namespace abm
