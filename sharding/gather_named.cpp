#include "sharding/gather_named.h"

#include <string>
#include <vector>

namespace abm {

NamedTensors gather_named_tensors(const NamedTensors& mine, Communicator& comm, int root) {
  // Per rank: its meta [name length, name bytes..., ndim, dims...] per tensor, then the
  // tensors themselves, each broadcast from that rank.
  std::vector<int64_t> meta;
  for (const auto& [name, t] : mine) {
    meta.push_back(static_cast<int64_t>(name.size()));
    for (char c : name) meta.push_back(static_cast<unsigned char>(c));
    meta.push_back(t.dim());
    for (int64_t d : t.sizes()) meta.push_back(d);
  }
  NamedTensors out;
  for (int r = 0; r < comm.size(); ++r) {
    at::Tensor n = at::tensor({static_cast<int64_t>(meta.size())}, at::kLong);
    comm.broadcast(n, r);
    at::Tensor m = r == comm.rank() ? at::tensor(meta, at::kLong) : at::empty({n.item<int64_t>()}, at::kLong);
    comm.broadcast(m, r);
    const int64_t* p = m.data_ptr<int64_t>();
    size_t k = 0;
    for (int64_t i = 0; i < m.numel(); ++k) {
      std::string name;
      for (int64_t len = p[i++], c = 0; c < len; ++c) name += static_cast<char>(p[i++]);
      std::vector<int64_t> shape(p + i + 1, p + i + 1 + p[i]);
      i += 1 + static_cast<int64_t>(shape.size());
      at::Tensor t = r == comm.rank() ? mine[k].second.detach().to(at::kFloat).contiguous().clone()
                                      : at::empty(shape, at::kFloat);
      comm.broadcast(t, r);
      if (comm.rank() == root) out.emplace_back(name, t);
    }
  }
  return out;
}

}  // namespace abm
