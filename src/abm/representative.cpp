#include "abm/representative.h"

#include <algorithm>

#include "core/check.h"
#include "core/log.h"
#include "data/sampler.h"
#include "lora/init.h"

namespace abm {

int64_t RepresentativeBatch::tokens() const {
  int64_t n = 0;
  for (auto& s : ids) n += static_cast<int64_t>(s.size());
  return n;
}

int64_t RepresentativeBatch::tokens(const std::vector<int64_t>& which) const {
  int64_t t = 0;
  for (int64_t k : which) t += static_cast<int64_t>(ids.at(k).size());
  return t;
}

RepresentativeBatch draw_representative(const Dataset& train, int64_t samples,
                                        int64_t max_length, uint64_t seed, Communicator& comm) {
  RepresentativeBatch rb;
  at::Tensor header = at::zeros({2}, at::kLong);  // [N, total tokens]
  std::vector<int64_t> lengths;
  std::vector<int64_t> flat;
  if (comm.rank() == 0) {
    const int64_t n = static_cast<int64_t>(train.examples.size());
    ABM_REQUIRE(n > 0, "ABM: the training set ", train.path, " has no examples");
    std::vector<int64_t> perm = permutation(n, module_seed(seed, "representative", "abm"));
    perm.resize(std::min(samples, n));
    for (int64_t i : perm) {
      const auto& e = train.examples[i].ids;
      int64_t len = std::min<int64_t>(max_length, e.size());
      rb.indices.push_back(i);
      lengths.push_back(len);
      flat.insert(flat.end(), e.begin(), e.begin() + len);
    }
    if (n < samples) log0("abm: the training set has only ", n, " examples; using all of them");
    header[0] = static_cast<int64_t>(perm.size());
    header[1] = static_cast<int64_t>(flat.size());
  }
  comm.broadcast(header, 0);
  const int64_t N = header[0].item<int64_t>(), total = header[1].item<int64_t>();
  at::Tensor meta = comm.rank() == 0 ? at::tensor(rb.indices, at::kLong) : at::empty({N}, at::kLong);
  at::Tensor lens = comm.rank() == 0 ? at::tensor(lengths, at::kLong) : at::empty({N}, at::kLong);
  at::Tensor toks = comm.rank() == 0 ? at::tensor(flat, at::kLong) : at::empty({total}, at::kLong);
  comm.broadcast(meta, 0);
  comm.broadcast(lens, 0);
  comm.broadcast(toks, 0);
  rb.indices.assign(meta.data_ptr<int64_t>(), meta.data_ptr<int64_t>() + N);
  rb.ids.clear();
  const int64_t* t = toks.data_ptr<int64_t>();
  for (int64_t k = 0, off = 0; k < N; ++k) {
    int64_t len = lens[k].item<int64_t>();
    rb.ids.emplace_back(t + off, t + off + len);
    off += len;
  }
  return rb;
}

PaddedSamples pad_samples(const RepresentativeBatch& rb, const std::vector<int64_t>& which) {
  int64_t T = 0;
  for (int64_t k : which) T = std::max<int64_t>(T, rb.ids.at(k).size());
  const int64_t b = static_cast<int64_t>(which.size());
  PaddedSamples p{at::zeros({b, T}, at::kLong), at::zeros({b, T}, at::kBool)};
  for (int64_t i = 0; i < b; ++i) {
    const auto& s = rb.ids[which[i]];
    const int64_t len = static_cast<int64_t>(s.size());
    p.ids[i].narrow(0, 0, len).copy_(at::tensor(s, at::kLong));
    p.real[i].narrow(0, 0, len).fill_(true);
  }
  return p;
}

std::vector<int64_t> cycled_samples(const SampleRange& r, int64_t size) {
  std::vector<int64_t> k;
  for (int64_t n = r.begin; n < r.end; ++n) k.push_back(n % size);
  return k;
}

}  // namespace abm
