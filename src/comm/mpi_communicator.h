// MpiCommunicator: the Communicator over a private duplicate of MPI_COMM_WORLD, for
// contiguous CPU tensors; CUDA tensors go through a host copy (the fallback where NCCL is
// not used: correct, not fast).
//
// MPI counts are `int`, so every collective moves at most `max_chunk` elements per MPI
// call (default 2^30) and loops. bf16/fp16 have no MPI type: they travel as an opaque
// 2-byte datatype and are reduced by user-defined ops that compute in float.
#pragma once
#include <mpi.h>

#include "comm/communicator.h"

namespace abm {

class MpiCommunicator : public Communicator {
 public:
  static constexpr int64_t kMaxChunk = int64_t{1} << 30;

  // Collective over `group` (default MPI_COMM_WORLD; MPI must be initialized), which is
  // duplicated. `max_chunk` is the most elements per MPI call; tests pass a tiny value to
  // drive the chunked paths.
  explicit MpiCommunicator(int64_t max_chunk = kMaxChunk, MPI_Comm group = MPI_COMM_WORLD);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::Sum) override;
  void broadcast(at::Tensor& t, int root) override;
  at::Tensor all_gather(const at::Tensor& mine) override;
  std::vector<at::Tensor> all_gather_v(const at::Tensor& mine) override;
  void send(const at::Tensor& t, int dst, int tag) override;
  void recv(at::Tensor& t, int src, int tag) override;
  void barrier() override;

 private:
  MPI_Datatype mpi_type(const at::Tensor& t, const char* what) const;
  MPI_Op mpi_op(at::ScalarType dtype, ReduceOp op) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::string peers_;  // who a blocked call waits for, for the watchdog's message
  int64_t max_chunk_;
  MPI_Datatype bf16_ = MPI_DATATYPE_NULL, fp16_ = MPI_DATATYPE_NULL;  // 2 opaque bytes
  MPI_Op bf16_sum_ = MPI_OP_NULL, bf16_max_ = MPI_OP_NULL;
  MPI_Op fp16_sum_ = MPI_OP_NULL, fp16_max_ = MPI_OP_NULL;
};

// Collective over MPI_COMM_WORLD: the ranks passing the same `color` form one group,
// ranked by `key` (MPI_Comm_split), e.g. the replicas of one ABM pipeline stage.
std::unique_ptr<Communicator> make_mpi_subgroup(int color, int key);

}  // namespace abm
