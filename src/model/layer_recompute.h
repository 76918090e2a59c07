// Per-layer activation recomputation on the autograd path (what --recompute does where the
// CPU's hand-written step does not run, e.g. on a GPU): the forward keeps only the layer's
// input (and its adapters' dropout-stream states); the backward runs the layer again with
// autograd from that input, with the same masks, and backpropagates through it. Memory
// holds one layer's activations instead of all of them, for ~one more forward of compute;
// losses and gradients are bitwise those without recomputation.
#pragma once
#include <torch/torch.h>

#include "model/llama_layer.h"

namespace abm {

// layer.forward(cfg, x, cos, sin, mask, {}, sdpa), recomputed in the backward. x [B, T, H].
at::Tensor recomputed_layer(const DecoderLayer& layer, const LlamaConfig& cfg, const at::Tensor& x,
                            const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                            bool sdpa);

}  // namespace abm
