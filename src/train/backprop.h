// Backprop: the train step's forward and backward written out by hand (docs/performance.md), for
// LoRA (gradients of every adapter's A and B) and full-parameter training (gradients of
// every model weight), without LibTorch's autograd graph.
//
// Why: on CPU the autograd version of the model spends a large share of the step outside
// the frozen GEMMs — batched attention matmuls far below peak, T x T score tensors going
// through memory pass after pass, saved copies of every intermediate. Here:
// - the projections that share an input are one GEMM each (q|k|v, gate|up): in LoRA mode
//   their frozen weights are laid out once as one tensor, and the model's weights become
//   views of it (same values; merge/unmerge and saving work as before);
// - LoRA adds into the frozen output with one addmm per module; the A down-projections of
//   modules sharing an input (and without dropout) are one GEMM, and so are their dA and
//   input-gradient updates in the backward;
// - attention is train/attention.h (per head, in cache, causal tiles only), with 1/sqrt(d)
//   folded into the RoPE pass over q, and the probabilities kept for the backward when they
//   fit (<= 64 MiB per layer), else recomputed tile by tile;
// - the head and the cross-entropy run in row chunks, so [N, vocab] logits never exist;
// - each layer keeps only what its backward reads.
//
// Semantics are the model's own (llama_layer.cpp, lora_linear.cpp, data/loss.cpp: same
// casts, fp32 RMSNorm statistics and softmax, same dropout masks from each module's own
// generator), so losses and gradients equal the autograd path up to float summation order
// (tests/train_step_test.cpp).
//
// Activation recomputation (recompute = true): the forward keeps only each layer's input
// and its modules' dropout-generator states; the backward reruns the layer's forward from
// them (same code, same masks) before differentiating it, so memory holds one layer's
// activations instead of all of them, and losses and gradients are bitwise those without
// recomputation. Costs one more forward of the decoder stack (~6N instead of 4N FLOPs).
#pragma once
#include <torch/torch.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "data/batch.h"
#include "lora/adapter_set.h"
#include "model/llama_model.h"
#include "model/projection.h"
#include "model/rope.h"
#include "train/attention.h"

namespace abm {

struct LossSum {
  double sum = 0;     // sum of token cross-entropies over the batch's targets (nats)
  int64_t count = 0;  // targets
};

class Backprop {
 public:
  // adapters == nullptr: full-parameter mode (model weights must be fp32). The model and the
  // adapters must outlive this object.
  Backprop(LlamaModel& model, AdapterSet* adapters, bool recompute);

  // Forward and backward of one micro-batch: adds d(sum of token losses)/d(parameter) to
  // every trainable parameter's .grad() (allocating zeros when undefined). With several
  // intra-op threads and no dropout, the batch's rows are split into one slice per thread,
  // each run single-threaded, and the slices' gradients are added in slice order.
  LossSum run(const Batch& b);

  bool recompute() const { return recompute_; }
  void set_attention_block(int64_t rows) { attn_block_ = rows; }
  // Wall seconds per part of run() (frozen GEMMs, LoRA, attention, norms, ...), summed
  // since profiling was switched on; for `abmlora bench --profile`.
  void set_profile(bool on) { profiling_ = on; prof_.clear(); }
  const std::map<std::string, double>& profile() const { return prof_; }

 private:
  // Indices into per-projection arrays: projections() order (model/projection.h).
  enum { kQ, kK, kV, kO, kGate, kUp, kDown, kProjs };
  static_assert(kProjs == kProjCount && kQ == int(Proj::q) && kDown == int(Proj::down));
  // Projections sharing one input, whose outputs are adjacent columns of one buffer.
  struct Group {
    int first, count;
  };
  static constexpr Group kAttnIn{kQ, 3}, kAttnOut{kO, 1}, kMlpIn{kGate, 2}, kMlpOut{kDown, 1};
  struct ProjState {    // what one projection's backward reads (LoRA only)
    at::Tensor hA;      // [N, r] in the LoRA dtype: A applied to the (dropped-out) input
    at::Tensor keep;    // [N, in] fp32 dropout keep mask / (1 - p); undefined without dropout
  };
  struct LayerState {
    at::Tensor x;              // [N, H] layer input
    at::Tensor r1, r2;         // [N, 1] fp32 reciprocal RMS of x and of h
    at::Tensor xn1, xn2;       // [N, H] normed inputs of attention and MLP
    at::Tensor qkv;            // [N, qd + 2 kvd]: q and k after RoPE, v
    at::Tensor att;            // [N, qd] attention output (o_proj input)
    at::Tensor probs;          // [B*heads, tiles] fp32 attention probabilities, when kept
    at::Tensor h;              // [N, H] residual stream after attention
    at::Tensor gu;             // [N, 2 I] gate | up outputs
    std::array<ProjState, kProjs> p;
    std::vector<at::Tensor> rng;  // dropout generator states before the layer (recompute)
  };
  struct Ctx {                 // per micro-batch
    int64_t B = 0, T = 0, N = 0;
    at::Tensor cos, sin;       // [N, 1, hd] compute dtype
    at::Tensor masked;         // [1 or B, T, T] bool, or undefined (causal)
    AttnDims attn;
    float q_scale = 1;         // 1/sqrt(head_dim), applied in the RoPE pass over q
    bool keep_probs = false;   // attention probabilities fit kProbsBudget
  };

  int row_slices(const Batch& b) const;  // how many row slices run() runs side by side
  LossSum run_rows(const Batch& b);      // run() of one slice, on this thread's threads
  // keep: s will be differentiated (keeps the attention probabilities when they fit)
  at::Tensor layer_forward(size_t i, const at::Tensor& x, LayerState& s, const Ctx& c, bool keep);
  at::Tensor layer_backward(size_t i, LayerState& s, const at::Tensor& dy, const Ctx& c);
  // Final norm, head and cross-entropy over row chunks: the loss sum, and d loss / d x.
  LossSum head_loss(const at::Tensor& x, const at::Tensor& labels, const Ctx& c, at::Tensor& dx);

  // y [N, sum of outs] = x [N, in] W^T (+ LoRA) for the group's projections.
  void group_forward(size_t i, Group g, const at::Tensor& x, at::Tensor y, LayerState& s);
  // dx [N, in] (written) from dy [N, sum of outs]; LoRA (and full-mode weight) gradients.
  void group_backward(size_t i, Group g, const at::Tensor& dy, const at::Tensor& x,
                      const LayerState& s, at::Tensor dx);
  void lora_add(LoraLinear* a, const at::Tensor& hA, at::Tensor y) const;
  // The dtype the LoRA products run in for input x: fp32, or bf16 in bf16 compute.
  static at::ScalarType lora_dtype(const at::Tensor& x) {
    return x.scalar_type() == at::kBFloat16 ? at::kBFloat16 : at::kFloat;
  }
  LoraLinear* active(size_t i, int kind) const;  // the LoRA of a projection when it acts
  bool dropping(size_t i, int kind) const;       // ... and draws dropout masks
  const at::Tensor& weight(size_t i, int kind) const;
  int64_t column(size_t i, Group g, int kind) const;  // first output column of kind
  at::Tensor fused(size_t i, Group g) const;  // the group's one weight tensor, if laid out so
  std::vector<at::Tensor> save_rng(size_t i) const;
  void load_rng(size_t i, const std::vector<at::Tensor>& states) const;

  LlamaModel& model_;
  AdapterSet* adapters_;
  bool recompute_;
  bool full_;
  int64_t attn_block_ = 128;
  bool profiling_ = false;
  std::map<std::string, double> prof_;
  friend struct ProfSpan;
  Rope rope_;
  std::vector<std::array<LoraLinear*, kProjs>> lora_;  // per loaded layer, null = none
  std::vector<std::array<at::Tensor, 2>> fused_;       // per layer: [q|k|v], [gate|up] weights
  at::Tensor embed_, norm_, head_;                     // model weights (handles)
};

}  // namespace abm
