#include "train/evaluate.h"

#include <cmath>

#include "data/batch.h"
#include "data/loss.h"
#include "data/sampler.h"

namespace abm {

double EvalResult::ppl() const { return std::exp(loss); }

at::Tensor batch_logits(const LlamaModel& model, const Batch& b) {
  return model.head(model.forward_layers(model.embed(b.ids), b.positions, nullptr, b.allowed));
}

EvalResult evaluate(const LlamaModel& model, const Dataset& d, int64_t micro, Communicator& comm) {
  at::NoGradGuard ng;
  SampleRange mine = shard(d.size(), comm.rank(), comm.size());
  double sum = 0, count = 0;
  for (int64_t i = mine.begin; i < mine.end; i += micro) {
    std::vector<int64_t> rows;
    for (int64_t j = i; j < std::min(mine.end, i + micro); ++j) rows.push_back(j);
    Batch b = make_batch(d, rows);
    TokenLoss tl = token_loss_sum(batch_logits(model, b), b.labels);
    sum += tl.sum.item<double>();
    count += double(tl.count);
  }
  at::Tensor t = at::tensor({sum, count}, at::kDouble);
  comm.all_reduce(t);
  EvalResult e;
  e.targets = static_cast<int64_t>(t[1].item<double>());
  e.loss = e.targets ? t[0].item<double>() / double(e.targets) : 0.0;
  return e;
}

}  // namespace abm
