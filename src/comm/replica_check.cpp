#include "comm/replica_check.h"

namespace abm {

bool identical_on_all_ranks(const std::vector<at::Tensor>& tensors, Communicator& comm,
                            uint64_t* hash) {
  at::NoGradGuard ng;
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the bytes
  for (const at::Tensor& t : tensors) {
    at::Tensor c = t.detach().cpu().contiguous();  // device tensors are read on the host
    const uint8_t* b = static_cast<const uint8_t*>(c.data_ptr());
    for (int64_t i = 0, n = c.numel() * c.element_size(); i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  }
  if (hash) *hash = h;
  if (comm.size() == 1) return true;
  // max(v) == -max(-v) iff every rank has the same v (63 bits of the hash; int64 sums).
  const int64_t v = static_cast<int64_t>(h >> 1);
  at::Tensor hi = at::tensor({v}, at::kLong), lo = at::tensor({-v}, at::kLong);
  comm.all_reduce(hi, ReduceOp::Max);
  comm.all_reduce(lo, ReduceOp::Max);
  return hi.item<int64_t>() == -lo.item<int64_t>();
}

}  // namespace abm
