// One pre-allocated flat fp32 buffer holding every trainable parameter's gradient, so a
// data-parallel step costs exactly one all-reduce. Also the global-norm clip.
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
  // Sums the buffer over ranks and multiplies by `scale` (e.g. 1 / global token count).
  void all_reduce(Communicator* comm, double scale);
  // Writes the buffer back into param.grad() (allocating it if needed).
  void scatter();
  double norm() const;           // L2 norm of the whole buffer
  double clip(double max_norm);  // scales to max_norm if above; returns the pre-clip norm
  at::Tensor& flat() { return flat_; }  // [total] fp32

 private:
  std::vector<at::Tensor> params_;
  at::Tensor flat_;  // [total]
};

}  // namespace abm
