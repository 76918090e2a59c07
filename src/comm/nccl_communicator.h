// NcclCommunicator: the Communicator over NCCL for CUDA tensors (one per process group).
//
// Set-up: the group's rank 0 creates the ncclUniqueId and broadcasts it over MPI; where
// MPI has no world (launches without PMIx), ABM_NCCL_ID_FILE=PATH on a shared file system
// carries it instead and ranks come from the launcher's environment (launcher_env.h).
// Each rank drives the GPU of its local rank.
//
// Ordering: collectives run on LibTorch's current CUDA stream when LibTorch has CUDA
// (ABM_TORCH_CUDA), so they are ordered with the kernels that produce and consume the
// tensors; with a CPU-only LibTorch they run on the communicator's own stream and only the
// raw-pointer calls (device memory from cudaMalloc) are usable. Calls return once
// enqueued; `synchronize()` waits. Every enqueued operation is watched (nccl_watchdog.h):
// ABM_NCCL_TIMEOUT_S (default 600) bounds it.
#pragma once
#include <mpi.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/nccl_watchdog.h"

namespace abm {

struct NcclOptions {
  double timeout_s = 600;                      // ABM_NCCL_TIMEOUT_S
  int64_t bucket_bytes = int64_t{64} << 20;    // all_reduce_bucketed: bytes per NCCL group
  std::string id_file;                         // ABM_NCCL_ID_FILE ("" = broadcast over MPI)
  static NcclOptions from_env();
};

class NcclCommunicator : public Communicator {
 public:
  // Collective over `group` (every rank of it calls this). `name` keeps id files of
  // different groups apart.
  NcclCommunicator(MPI_Comm group, const std::string& name, const NcclOptions& opts);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const { return device_; }
  cudaStream_t stream() const;

  // Communicator interface, for contiguous CUDA tensors on this rank's device.
  void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::Sum) override;
  void broadcast(at::Tensor& t, int root) override;
  at::Tensor all_gather(const at::Tensor& mine) override;
  std::vector<at::Tensor> all_gather_v(const at::Tensor& mine) override;
  void send(const at::Tensor& t, int dst, int tag) override;
  void recv(at::Tensor& t, int src, int tag) override;
  void barrier() override;

  // Many tensors (e.g. every LoRA gradient) in buckets of opts.bucket_bytes, each bucket
  // one ncclGroupStart/End so NCCL fuses its launches.
  void all_reduce_bucketed(std::vector<at::Tensor>& ts, ReduceOp op = ReduceOp::Sum);

  // Raw device memory, usable without a CUDA LibTorch (benchmarks, gpu_check).
  void all_reduce_raw(void* buf, size_t count, ncclDataType_t type, ncclRedOp_t op);
  void synchronize();  // waits for everything enqueued; throws the watchdog's error

 private:
  void check_tensor(const at::Tensor& t, const char* what) const;
  void enqueued(const std::string& what);  // hands the op to the watchdog

  int rank_ = 0, size_ = 1, device_ = 0;
  NcclOptions opts_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t own_stream_ = nullptr;
  float* scratch_ = nullptr;  // [1] on the device, for barrier
  std::unique_ptr<NcclWatchdog> watchdog_;
};

// Over MPI_COMM_WORLD (or the launcher's world with ABM_NCCL_ID_FILE). Without a GPU:
// abm::Error "no CUDA device".
std::unique_ptr<NcclCommunicator> make_nccl_communicator();
// Over a sub-group (e.g. the replicas of one pipeline stage); `name` must be unique.
std::unique_ptr<NcclCommunicator> make_nccl_communicator(MPI_Comm group, const std::string& name);

}  // namespace abm
