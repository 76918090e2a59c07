// The train step's elementwise layer pieces that Backprop (backprop.h) writes by hand:
// RMSNorm forward/backward and RoPE forward/backward in place, with the model's semantics
// (model/llama_layer.cpp, model/rope.cpp) so losses and gradients equal the autograd path.
#pragma once
#include <torch/torch.h>

namespace abm {

// HF LlamaRMSNorm exactly as model/llama_layer.cpp computes it; r = 1 / rms, [N, 1] fp32.
at::Tensor rms_forward(const at::Tensor& x, const at::Tensor& w, double eps, at::Tensor& r);

// d/dx of w * (x r).to(dt): dx = r dn - x r^3 mean(dn x), dn = (dy w) in fp32. With dw
// (full mode), also adds the sum over rows of dy * n to *dw.
at::Tensor rms_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w,
                        const at::Tensor& r, at::Tensor* dw = nullptr);

// RoPE in place on x [N, heads, hd] (rows of any stride), cos/sin [N, 1, hd] contiguous;
// scale multiplies the result (1/sqrt(head_dim) on q folds attention's scaling in here;
// exact when head_dim is a power of 4, as in LLaMA's 64 and 256). The backward applies
// the transpose to a gradient in place.
void rope_forward_(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, float scale);
void rope_backward_(at::Tensor dy, const at::Tensor& cos, const at::Tensor& sin, float scale);

}  // namespace abm
