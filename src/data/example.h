// Example: one tokenized training sequence, the unit every data stage passes along.
//
// Label convention (Hugging Face style): labels[i] is the label *of token i*, i.e. ids[i]
// when token i is something the model should learn to produce, else kIgnore. The loss
// shifts internally: logits at position i are scored against labels[i + 1]
// (token_loss_sum in loss.h). Consequently labels[0] is never a target; we always store
// it as kIgnore so that packing (where position 0 of an example follows another example)
// cannot turn it into one.
#pragma once
#include <cstdint>
#include <vector>

namespace abm {

constexpr int64_t kIgnore = -100;  // label of a token that is not trained on (PyTorch's ignore_index)

struct Example {
  std::vector<int64_t> ids;     // [T] token ids (BOS first unless pre-tokenized)
  std::vector<int64_t> labels;  // [T] ids[i] where trained, kIgnore elsewhere
  int64_t source = 0;           // line (or record number in a JSON array) it came from

  int64_t size() const { return static_cast<int64_t>(ids.size()); }
  // Number of predicted targets: labels != kIgnore (labels[0] is always kIgnore).
  int64_t targets() const {
    int64_t n = 0;
    for (int64_t l : labels) n += l != kIgnore;
    return n;
  }
};

}  // namespace abm
