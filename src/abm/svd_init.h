// LoRA initializations that need more than a seed, computed once and shared over ranks:
// PiSSA (lora/pissa.h) — the SVD of each frozen weight; LoRA-GA (lora/lora_ga.h) — the
// SVD of each frozen weight's full gradient on a probe batch.
// Every rank holds the whole model (data parallel), but each module's SVD runs on one
// rank only (round robin over the module order, so layers and kinds spread evenly) and is
// broadcast from there. The factors do not depend on which rank computed them
// (pissa_factors is single-threaded), so any world size gives the same bits.
#pragma once
#include "comm/communicator.h"
#include "data/dataset.h"
#include "lora/adapter_set.h"

namespace abm {

// cfg.init must be "pissa". Attaches the adapters and makes every targeted weight the
// residual (AdapterSet::attach_weights). Logs the wall time.
AdapterSet attach_pissa(LlamaModel& model, const LoraConfig& cfg, Communicator& comm);

// cfg.init must be "lora-ga". G of every targeted weight on `rows` of `d` (the mean
// token loss, split over the ranks; abm/info_loss.h), then the factors and the offset base
// (AdapterSet::restart_from). The same rows give the same start on any world size up to
// the gradient all-reduce's summation order.
AdapterSet attach_lora_ga(LlamaModel& model, const LoraConfig& cfg, const Dataset& d,
                          const std::vector<int64_t>& rows, int64_t micro, Communicator& comm);

}  // namespace abm
