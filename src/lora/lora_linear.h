// LoraLinear: the LoRA update of one frozen projection, y = W0 x + s * B (A (dropout(x))),
// computed exactly as PEFT 0.7's lora.Linear.forward does in fp32 (adapter math in fp32,
// added to the base output, result cast back to the base dtype); in bf16 compute, as PEFT
// runs under torch.autocast (the two products in bf16 from the fp32 masters: the fp32
// products cost a cast of every input and twice the bandwidth of skinny GEMMs, ~30% of a
// CPU train step). It plugs into Linear::adapter.
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "model/llama_layer.h"

namespace abm {

class LoraLinear : public LinearAdapter {
 public:
  // A [r, in], B [out, r]: copied to fp32 leaves with requires_grad on `device` (the
  // projection's). The dropout stream lives on that device (a CUDA generator on a GPU).
  LoraLinear(const at::Tensor& A, const at::Tensor& B, double scale, double dropout,
             uint64_t dropout_seed, at::Device device = at::kCPU);

  // x [..., in], base = x W^T [..., out] (compute dtype) -> [..., out] in base's dtype.
  // Returns `base` itself when disabled (teacher mode) or merged (the delta is in W).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base) const override;

  at::Tensor& A() { return A_; }  // [r, in] fp32 leaf; optimizers update it in place
  at::Tensor& B() { return B_; }  // [out, r] fp32 leaf
  const at::Tensor& A() const { return A_; }
  const at::Tensor& B() const { return B_; }
  int64_t r() const { return A_.size(0); }
  int64_t in() const { return A_.size(1); }
  int64_t out() const { return B_.size(0); }
  double scale() const { return scale_; }
  double dropout() const { return dropout_; }

  // false = teacher mode: forward returns the base output untouched.
  void set_enabled(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  // Dropout acts only in train mode. New adapters start in eval mode (like HF models
  // after from_pretrained); the trainer switches them on.
  void set_train(bool on) { train_ = on; }
  bool train() const { return train_; }

  // The dropout stream: reseeding with a step-derived seed makes masks reproducible
  // without saving generator state; the state itself is there for exact checkpoints.
  void reseed_dropout(uint64_t seed);
  at::Tensor dropout_state() const;  // uint8 tensor (the generator's state, on the CPU)
  void set_dropout_state(const at::Tensor& state);
  at::Tensor rng_state() const override { return train_ && dropout_ > 0 ? dropout_state() : at::Tensor(); }
  void set_rng_state(const at::Tensor& s) override {
    if (s.defined()) set_dropout_state(s);
  }

  // s * B @ A: [out, in] fp32, no autograd.
  at::Tensor delta_weight() const;
  // W [out, in] += s * B @ A in place (summed in fp32, rounded once to W's dtype), so
  // every holder of W sees it; forward then skips the delta. unmerge subtracts it again
  // (exact up to one rounding per element; bit-exact only when W is fp32 and the sums
  // are exact, so keep a copy if bf16 weights must come back bitwise).
  void merge(at::Tensor& W);
  void unmerge(at::Tensor& W);
  bool merged() const { return merged_; }

 private:
  at::Tensor A_;  // [r, in] fp32, requires_grad
  at::Tensor B_;  // [out, r] fp32, requires_grad
  double scale_;
  double dropout_;
  bool enabled_ = true;
  bool train_ = false;
  bool merged_ = false;
  mutable at::Generator gen_;  // forward is const (LinearAdapter), drawing masks is not
};

}  // namespace abm
