// The Communicator: the collectives abmlora needs, independent of the transport.
// Backends: MPI (CPU tensors; CUDA tensors staged through the host) and NCCL (CUDA tensors).
//
// All tensors must be contiguous; dtypes fp32, bf16, fp16, f64, int32, int64, uint8/int8.
// Element counts may exceed 2^31: backends split large buffers into chunks.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace abm {

enum class ReduceOp { Sum, Max };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: t becomes the elementwise reduction over ranks.
  virtual void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // In place: every rank gets root's t (shapes must already agree).
  virtual void broadcast(at::Tensor& t, int root) = 0;
  // Every rank contributes `mine` (same numel everywhere); returns [size * numel] flat,
  // rank-major.
  virtual at::Tensor all_gather(const at::Tensor& mine) = 0;
  // Like all_gather but each rank may contribute a different numel; returns one flat
  // tensor per rank.
  virtual std::vector<at::Tensor> all_gather_v(const at::Tensor& mine) = 0;
  virtual void send(const at::Tensor& t, int dst, int tag) = 0;
  virtual void recv(at::Tensor& t, int src, int tag) = 0;  // t preallocated
  virtual void barrier() = 0;
};

// Communicator over MPI_COMM_WORLD (or a duplicate of a given communicator) for CPU tensors.
std::unique_ptr<Communicator> make_mpi_communicator();

// The data-parallel group for tensors on `device`: NCCL over the world for CUDA (when
// built with it and ABM_COMM_BACKEND is not "mpi"), else MPI (device tensors staged).
// Every rank calls it (NCCL's set-up is collective).
std::unique_ptr<Communicator> make_device_communicator(at::Device device);

}  // namespace abm
