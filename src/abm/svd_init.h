// LoRA initializations that need more than a seed, computed once and shared over ranks:
// PiSSA (lora/pissa.h) — the SVD of each frozen weight.
// Every rank holds the whole model (data parallel), but each module's SVD runs on one
// rank only (round robin over the module order, so layers and kinds spread evenly) and is
// broadcast from there. The factors do not depend on which rank computed them
// (pissa_factors is single-threaded), so any world size gives the same bits.
#pragma once
#include "comm/communicator.h"
#include "lora/adapter_set.h"

namespace abm {

// cfg.init must be "pissa". Attaches the adapters and makes every targeted weight the
// residual (AdapterSet::attach_weights). Logs the wall time.
AdapterSet attach_pissa(LlamaModel& model, const LoraConfig& cfg, Communicator& comm);

}  // namespace abm
