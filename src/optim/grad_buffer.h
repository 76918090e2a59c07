// One pre-allocated flat fp32 buffer holding every trainable parameter's gradient, on the
// parameters' device, so a data-parallel step costs exactly one all-reduce. Also the
// global-norm clip, computed on the device (no host read).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "comm/communicator.h"

namespace abm {

class GradBuffer {
 public:
  explicit GradBuffer(const std::vector<at::Tensor>& params);
  // Copies each param.grad() (zeros where undefined) into the buffer.
  void gather();
  // Sums the buffer over ranks and multiplies it by `scale`: a double scalar (0-dim, e.g.
  // 1 / the global token count, on the buffer's device), or undefined for none.
  void all_reduce(Communicator* comm, const at::Tensor& scale = {});
  // Writes the buffer back into param.grad() (allocating it if needed).
  void scatter();
  // Scales the buffer to max_norm when its L2 norm is above it (max_norm 0: never);
  // returns the pre-clip norm as a 0-dim double tensor on the device.
  at::Tensor clip(double max_norm);
  at::Tensor& flat() { return flat_; }  // [total] fp32

 private:
  bool all_grads(std::vector<at::Tensor>& grads) const;  // every param's .grad(), if all defined

  std::vector<at::Tensor> params_;
  at::Tensor flat_;  // [total]
  std::vector<at::Tensor> views_;  // per param: its slice of flat_, in its shape
};

}  // namespace abm
