// The teacher pass of ABM: runs representative samples through a model range with the
// teacher's adapters (none = the frozen base) and keeps, per selected layer, one byte per
// unit saying whether the teacher's gate_proj output is > 0 — not the activations
// themselves. Optionally keeps the hidden state leaving the range, which is what the
// next stage of a sharded run is fed (docs/design.md §5 phase 3).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "abm/representative.h"
#include "model/llama_model.h"

namespace abm {

class GateTaps;

struct TeacherSigns {
  std::vector<int64_t> layers;              // absolute selected layers, ascending
  std::vector<std::vector<at::Tensor>> on;  // [sample][j] bool [len, intermediate];
                                            // undefined for samples not captured here
  std::vector<at::Tensor> outputs;          // [sample] [len, hidden] (keep_outputs only)
  double seconds = 0;
};

// The range's input for samples `which`: the embedding of their ids when the range starts
// at layer 0, else inputs[k] ([len_k, hidden], e.g. the previous stage's teacher output),
// right-padded with zeros. -> [b, T, hidden] in the model's dtype.
at::Tensor range_input(const LlamaModel& model, const RepresentativeBatch& rb,
                       const std::vector<int64_t>& which, const at::Tensor& ids,
                       const std::vector<at::Tensor>* inputs);

// Sees each micro-batch's tapped gate outputs (samples `which`, padded as `p`) while the
// teacher pass has them, e.g. to measure the student when it computes the same.
using TeacherHook = std::function<void(const GateTaps& taps, const std::vector<int64_t>& which,
                                       const PaddedSamples& p)>;

// Captures samples `which` in micro-batches of `micro`, with whatever adapters are
// attached and enabled (the caller sets the teacher up; dropout must be off). No autograd.
TeacherSigns capture_teacher(LlamaModel& model, const RepresentativeBatch& rb,
                             const std::vector<int64_t>& layers,
                             const std::vector<int64_t>& which, int64_t micro,
                             const std::vector<at::Tensor>* inputs = nullptr,
                             bool keep_outputs = false, const TeacherHook& hook = {});

// The teacher-sign tensor of layer j for samples `which`, padded to T: [b, T, I] bool.
at::Tensor padded_signs(const TeacherSigns& t, size_t j, const std::vector<int64_t>& which,
                        int64_t T);

}  // namespace abm
