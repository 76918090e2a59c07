// The all-reduce benchmark's NCCL target: raw cudaMalloc'd fp32 buffers, so it runs with a
// CPU-only LibTorch too (gpu_check.sh builds against whatever LibTorch the machine has).
#include <vector>

#include "comm/allreduce_bench.h"
#include "comm/nccl_check.h"
#include "comm/nccl_communicator.h"

namespace abm {
namespace {

class NcclTarget : public AllReduceTarget {
 public:
  NcclTarget() : comm_(make_nccl_communicator()) {
    ABM_CUDA_CHECK(cudaMalloc(&scalar_, sizeof(double)));
  }
  ~NcclTarget() override {
    if (buf_) cudaFree(buf_);
    if (scalar_) cudaFree(scalar_);
  }
  int rank() const override { return comm_->rank(); }
  int size() const override { return comm_->size(); }
  std::string name() const override { return "nccl"; }
  void resize(int64_t count) override {
    if (buf_) ABM_CUDA_CHECK(cudaFree(buf_));
    buf_ = nullptr;
    ABM_CUDA_CHECK(cudaMalloc(&buf_, size_t(count) * sizeof(float)));
    count_ = count;
  }
  int64_t check() override {
    std::vector<float> host(static_cast<size_t>(count_));
    const int64_t r = rank(), w = size();
    for (int64_t i = 0; i < count_; ++i) host[i] = float((r + 1) * (i % 13 + 1));
    ABM_CUDA_CHECK(cudaMemcpy(buf_, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
    comm_->all_reduce_raw(buf_, size_t(count_), ncclFloat32, ncclSum);
    comm_->synchronize();
    ABM_CUDA_CHECK(cudaMemcpy(host.data(), buf_, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
    int64_t wrong = 0;
    for (int64_t i = 0; i < count_; ++i) wrong += host[i] != float(w * (w + 1) / 2 * (i % 13 + 1));
    return wrong;
  }
  void all_reduce() override { comm_->all_reduce_raw(buf_, size_t(count_), ncclFloat32, ncclSum); }
  void sync() override { comm_->synchronize(); }
  double max_over_ranks(double v) override {
    ABM_CUDA_CHECK(cudaMemcpy(scalar_, &v, sizeof(double), cudaMemcpyHostToDevice));
    comm_->all_reduce_raw(scalar_, 1, ncclFloat64, ncclMax);
    comm_->synchronize();
    ABM_CUDA_CHECK(cudaMemcpy(&v, scalar_, sizeof(double), cudaMemcpyDeviceToHost));
    return v;
  }
  void barrier() override { comm_->barrier(); }

 private:
  std::unique_ptr<NcclCommunicator> comm_;
  float* buf_ = nullptr;      // [count_] on this rank's GPU
  double* scalar_ = nullptr;  // [1]
  int64_t count_ = 0;
};

}  // namespace

std::unique_ptr<AllReduceTarget> make_nccl_allreduce_target() {
  return std::make_unique<NcclTarget>();
}

}  // namespace abm
