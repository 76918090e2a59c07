// GateTaps: records the output of mlp.gate_proj (the SiLU input, ABM's activation
// boundary) of chosen layers during a forward, including any adapter's delta, without
// changing the model's code: each tapped projection's adapter is wrapped by a recorder for
// the lifetime of this object. The recorded tensors keep their autograd graph.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "model/llama_model.h"

namespace abm {

class GateTaps {
 public:
  // layers: absolute indices inside the model's loaded range [first, last).
  GateTaps(LlamaModel& model, const std::vector<int64_t>& layers);
  ~GateTaps();  // restores the original adapters
  GateTaps(const GateTaps&) = delete;
  GateTaps& operator=(const GateTaps&) = delete;

  // The last forward's gate_proj output of the i-th tapped layer: [B, T, intermediate].
  const at::Tensor& output(size_t i) const;
  size_t size() const { return taps_.size(); }
  void clear();  // drops the recorded tensors (and their graphs)

 private:
  struct Recorder;
  LlamaModel& model_;
  std::vector<int64_t> local_;                 // indices into model.layers()
  std::vector<std::shared_ptr<Recorder>> taps_;
};

}  // namespace abm
