// Stage transport: hidden states travel forward (stage s -> s+1) and their gradients
// backward (s+1 -> s) between neighbouring stages of one pipeline, over the Communicator.
//
// Every tensor is preceded by a small header message (kind, micro-batch, dtype, shape), so
// the receiver checks what arrives against what it expects and fails with one line naming
// both shapes instead of reading garbage. On a mismatch the payload is still received (and
// dropped) before throwing, so the sender is never left blocked in its send.
//
// Sends are blocking (MPI_Send semantics): schedules must not have two neighbours both
// sending large tensors to each other at once. "All forwards, then all backwards" (GPipe)
// is safe; so is one micro-batch at a time.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "comm/communicator.h"
#include "sharding/stage_map.h"

namespace abm {

class StageTransport {
 public:
  // Tags tag_base and tag_base + 1 are used on `comm` (forward, backward). Tensors live on
  // `device` (CPU for the MPI communicator, the rank's GPU for NCCL).
  StageTransport(Communicator& comm, const StageMap& map, at::Device device = at::kCPU,
                 int tag_base = 7100);

  int prev_rank() const { return prev_; }  // -1 on the first stage
  int next_rank() const { return next_; }  // -1 on the last stage

  // h: [B, T, hidden] output of this stage's last layer, to the next stage.
  void send_forward(const at::Tensor& h, int64_t micro);
  // The previous stage's output; must have `shape` and `dtype` and belong to `micro`.
  at::Tensor recv_forward(at::IntArrayRef shape, at::ScalarType dtype, int64_t micro);
  // g: [B, T, hidden] dL/d(input of this stage), to the previous stage.
  void send_backward(const at::Tensor& g, int64_t micro);
  // dL/d(output of this stage) from the next stage.
  at::Tensor recv_backward(at::IntArrayRef shape, at::ScalarType dtype, int64_t micro);

 private:
  enum Kind : int64_t { kForward = 0, kBackward = 1 };
  void send(const at::Tensor& t, int dst, Kind kind, int64_t micro);
  at::Tensor recv(at::IntArrayRef shape, at::ScalarType dtype, int src, Kind kind,
                  int64_t micro);

  Communicator& comm_;
  at::Device device_;
  int rank_, stage_, prev_, next_, tag_base_;
};

}  // namespace abm
