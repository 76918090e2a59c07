// Collecting every stage's named tensors on one rank (abm-init's PEFT export, where each
// rank holds only its own stage's adapters).
#pragma once
#include "comm/communicator.h"
#include "model/safetensors.h"

namespace abm {

// Collective: every rank's tensors (any dtype, returned as fp32), in rank order, on `root`
// (empty elsewhere) — e.g. each stage's AdapterSet::named_tensors() for one PEFT export.
// Sent one tensor at a time, so no rank holds more than its own share plus one tensor.
NamedTensors gather_named_tensors(const NamedTensors& mine, Communicator& comm, int root = 0);

}  // namespace abm
