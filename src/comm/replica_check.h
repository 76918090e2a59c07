// Whether every rank holds bitwise the same tensors (e.g. trainable parameters after a
// gather or an optimizer step): a hash of the bytes, compared with two all-reduces.
#pragma once
#include <vector>

#include "comm/communicator.h"

namespace abm {

// Collective. True on every rank iff all ranks' tensors (same count, shapes and dtypes
// assumed) are bitwise identical. `hash` (optional) receives this rank's hash.
bool identical_on_all_ranks(const std::vector<at::Tensor>& tensors, Communicator& comm,
                            uint64_t* hash = nullptr);

}  // namespace abm
