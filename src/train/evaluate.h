// Token-weighted evaluation loss of a dataset, sharded over ranks in order: each rank
// sums its block's losses and target counts, one all-reduce combines them.
#pragma once
#include "comm/communicator.h"
#include "data/dataset.h"
#include "model/llama_model.h"

namespace abm {

struct EvalResult {
  double loss = 0;      // token-weighted mean cross-entropy (nats)
  int64_t targets = 0;
  double ppl() const;
};

EvalResult evaluate(const LlamaModel& model, const Dataset& d, int64_t micro, Communicator& comm);

// Logits of a collated batch (positions and block mask included): [B, T, vocab] fp32.
struct Batch;
at::Tensor batch_logits(const LlamaModel& model, const Batch& b);

}  // namespace abm
