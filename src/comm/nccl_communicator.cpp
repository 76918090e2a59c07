#include "comm/nccl_communicator.h"

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <thread>

#ifdef ABM_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include "comm/launcher_env.h"
#include "comm/nccl_check.h"
#include "core/mpi_check.h"
#include "core/runtime.h"

namespace abm {
namespace {

ncclDataType_t nccl_type(at::ScalarType t, const char* what) {
  switch (t) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    default: ABM_CHECK(false, what, ": unsupported dtype ", t);
  }
  return ncclFloat32;  // unreachable
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? ncclSum : ncclMax; }

// Blocking NCCL calls with no communicator to abort yet (init): if `f` does not return
// within timeout_s, print which call hangs and end the process, rather than hang the job.
template <typename F>
void with_deadline(const std::string& what, double timeout_s, F&& f) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread guard([&] {
    std::unique_lock<std::mutex> lk(mu);
    if (!cv.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return done; })) {
      std::fprintf(stderr, "[%s] %s did not finish within %g s (ABM_NCCL_TIMEOUT_S); exiting\n",
                   where().c_str(), what.c_str(), timeout_s);
      std::_Exit(2);
    }
  });
  auto finish = [&] {
    { std::lock_guard<std::mutex> lk(mu); done = true; }
    cv.notify_all();
    guard.join();
  };
  try {
    f();
  } catch (...) {
    finish();
    throw;
  }
  finish();
}

}  // namespace

NcclOptions NcclOptions::from_env() {
  NcclOptions o;
  if (const char* v = std::getenv("ABM_NCCL_TIMEOUT_S"); v && *v) {
    o.timeout_s = std::atof(v);
    ABM_REQUIRE(o.timeout_s > 0, "ABM_NCCL_TIMEOUT_S=\"", v, "\" must be a positive number of seconds");
  }
  if (const char* v = std::getenv("ABM_NCCL_ID_FILE")) o.id_file = v;
  return o;
}

NcclCommunicator::NcclCommunicator(MPI_Comm group, const std::string& name,
                                   const NcclOptions& opts)
    : opts_(opts) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" state
    count = 0;
  }
  ABM_REQUIRE(count > 0, "no CUDA device",
              e != cudaSuccess ? cat(" (", cudaGetErrorString(e), ")") : std::string());
  int local = launcher_local_rank();
  if (local < 0) local = Runtime::local_rank();
  device_ = device_for_local_rank(local, count);
  ABM_CUDA_CHECK(cudaSetDevice(device_));

  // The unique id: over MPI, or through a shared file when MPI has no world.
  ncclUniqueId id;
  if (opts_.id_file.empty()) {
    ABM_MPI_CHECK(MPI_Comm_rank(group, &rank_));
    ABM_MPI_CHECK(MPI_Comm_size(group, &size_));
    if (rank_ == 0) ABM_NCCL_CHECK(ncclGetUniqueId(&id));
    ABM_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, group));
  } else {
    rank_ = launcher_rank();
    size_ = launcher_size();
    ABM_REQUIRE(rank_ >= 0 && size_ > rank_, "ABM_NCCL_ID_FILE is set but the launcher gave no "
                "rank/size (OMPI_COMM_WORLD_RANK/SIZE, SLURM_PROCID/SLURM_NTASKS, RANK/WORLD_SIZE)");
    std::string mine;
    if (rank_ == 0) {
      ABM_NCCL_CHECK(ncclGetUniqueId(&id));
      mine.assign(reinterpret_cast<const char*>(&id), sizeof(id));
    }
    std::string got = share_via_file(opts_.id_file + "." + name, rank_, mine, sizeof(id),
                                     opts_.timeout_s);
    std::memcpy(&id, got.data(), sizeof(id));
  }
  with_deadline(cat("ncclCommInitRank(rank ", rank_, " of ", size_, ", group ", name, ")"),
                opts_.timeout_s, [&] { ABM_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_)); });
  ABM_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)));
#ifndef ABM_TORCH_CUDA
  ABM_CUDA_CHECK(cudaStreamCreateWithFlags(&own_stream_, cudaStreamNonBlocking));
#endif
  watchdog_ = std::make_unique<NcclWatchdog>(comm_, opts_.timeout_s, where());
}

NcclCommunicator::~NcclCommunicator() {
  bool aborted = watchdog_ && watchdog_->aborted();
  watchdog_.reset();  // joins the thread before the communicator goes away
  if (comm_ && !aborted) ncclCommDestroy(comm_);
  if (own_stream_) cudaStreamDestroy(own_stream_);
  if (scratch_) cudaFree(scratch_);
}

cudaStream_t NcclCommunicator::stream() const {
#ifdef ABM_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(device_).stream();
#else
  return own_stream_;
#endif
}

void NcclCommunicator::check_tensor(const at::Tensor& t, const char* what) const {
  ABM_CHECK(t.defined(), what, ": undefined tensor");
  ABM_CHECK(t.is_cuda() && t.device().index() == device_, what,
            ": NCCL backend needs a tensor on cuda:", device_, ", got ", t.device());
  ABM_CHECK(t.is_contiguous(), what, ": tensor must be contiguous, got sizes ", t.sizes());
}

void NcclCommunicator::enqueued(const std::string& what) { watchdog_->track(stream(), what); }

void NcclCommunicator::all_reduce(at::Tensor& t, ReduceOp op) {
  check_tensor(t, "all_reduce");
  ABM_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(),
                               nccl_type(t.scalar_type(), "all_reduce"), nccl_op(op), comm_,
                               stream()));
  enqueued(cat("all_reduce(", t.numel(), " x ", t.scalar_type(), ")"));
}

void NcclCommunicator::all_reduce_bucketed(std::vector<at::Tensor>& ts, ReduceOp op) {
  size_t i = 0;
  while (i < ts.size()) {
    // One bucket: tensors until the next would exceed bucket_bytes (at least one).
    size_t j = i;
    int64_t bytes = 0;
    ABM_NCCL_CHECK(ncclGroupStart());
    while (j < ts.size() && (j == i || bytes + ts[j].nbytes() <= size_t(opts_.bucket_bytes))) {
      at::Tensor& t = ts[j];
      check_tensor(t, "all_reduce_bucketed");
      ABM_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(),
                                   nccl_type(t.scalar_type(), "all_reduce_bucketed"),
                                   nccl_op(op), comm_, stream()));
      bytes += t.nbytes();
      ++j;
    }
    ABM_NCCL_CHECK(ncclGroupEnd());
    enqueued(cat("all_reduce_bucketed(tensors ", i, "..", j - 1, ", ", bytes, " bytes)"));
    i = j;
  }
}

void NcclCommunicator::all_reduce_raw(void* buf, size_t count, ncclDataType_t type,
                                      ncclRedOp_t op) {
  ABM_NCCL_CHECK(ncclAllReduce(buf, buf, count, type, op, comm_, stream()));
  enqueued(cat("all_reduce(", count, " elements, raw)"));
}

void NcclCommunicator::broadcast(at::Tensor& t, int root) {
  check_tensor(t, "broadcast");
  ABM_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " outside [0, ", size_, ")");
  ABM_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(),
                               nccl_type(t.scalar_type(), "broadcast"), root, comm_, stream()));
  enqueued(cat("broadcast(", t.numel(), " x ", t.scalar_type(), ", root ", root, ")"));
}

at::Tensor NcclCommunicator::all_gather(const at::Tensor& mine) {
  check_tensor(mine, "all_gather");
  at::Tensor out = at::empty({size_ * mine.numel()}, mine.options());  // [size * n]
  ABM_NCCL_CHECK(ncclAllGather(mine.data_ptr(), out.data_ptr(), mine.numel(),
                               nccl_type(mine.scalar_type(), "all_gather"), comm_, stream()));
  enqueued(cat("all_gather(", mine.numel(), " x ", mine.scalar_type(), ")"));
  return out;
}

// Counts first (one small all-gather, read on the host), then one broadcast per rank
// into its slice of the output, fused in one NCCL group.
std::vector<at::Tensor> NcclCommunicator::all_gather_v(const at::Tensor& mine) {
  check_tensor(mine, "all_gather_v");
  at::Tensor meta = at::tensor({mine.numel(), int64_t(mine.scalar_type())}, at::kLong)
                        .to(mine.device());
  at::Tensor all = all_gather(meta).cpu();  // [size * 2]; the copy orders after the gather
  watchdog_->rethrow();
  const int64_t* m = all.data_ptr<int64_t>();
  std::vector<int64_t> offset(size_ + 1, 0);
  for (int r = 0; r < size_; ++r) {
    ABM_CHECK(m[2 * r + 1] == int64_t(mine.scalar_type()), "all_gather_v: rank ", r,
              " has dtype ", at::ScalarType(m[2 * r + 1]), ", rank ", rank_, " has ",
              mine.scalar_type());
    offset[r + 1] = offset[r] + m[2 * r];
  }
  at::Tensor out = at::empty({offset[size_]}, mine.options());
  const ncclDataType_t type = nccl_type(mine.scalar_type(), "all_gather_v");
  const int64_t es = mine.element_size();
  ABM_NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < size_; ++r) {
    if (m[2 * r] == 0) continue;  // every rank skips the same ranks
    char* dst = static_cast<char*>(out.data_ptr()) + offset[r] * es;
    ABM_NCCL_CHECK(ncclBroadcast(r == rank_ ? mine.data_ptr() : nullptr, dst, m[2 * r], type, r,
                                 comm_, stream()));
  }
  ABM_NCCL_CHECK(ncclGroupEnd());
  enqueued(cat("all_gather_v(", offset[size_], " x ", mine.scalar_type(), ")"));
  std::vector<at::Tensor> parts;
  for (int r = 0; r < size_; ++r) parts.push_back(out.narrow(0, offset[r], m[2 * r]));
  return parts;
}

// NCCL has no tags: messages between one pair of ranks arrive in the order they were
// posted, which is what the stage transport relies on.
void NcclCommunicator::send(const at::Tensor& t, int dst, int tag) {
  check_tensor(t, "send");
  ABM_NCCL_CHECK(ncclSend(t.data_ptr(), t.numel(), nccl_type(t.scalar_type(), "send"), dst, comm_,
                          stream()));
  enqueued(cat("send(", t.numel(), " x ", t.scalar_type(), " to rank ", dst, ", tag ", tag, ")"));
}

void NcclCommunicator::recv(at::Tensor& t, int src, int tag) {
  check_tensor(t, "recv");
  ABM_NCCL_CHECK(ncclRecv(t.data_ptr(), t.numel(), nccl_type(t.scalar_type(), "recv"), src, comm_,
                          stream()));
  enqueued(cat("recv(", t.numel(), " x ", t.scalar_type(), " from rank ", src, ", tag ", tag, ")"));
}

// Raw scratch memory, so barrier works with a CPU-only LibTorch too.
void NcclCommunicator::barrier() {
  ABM_NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream()));
  enqueued("barrier");
  synchronize();
}

void NcclCommunicator::synchronize() { watchdog_->wait_all(stream()); }

std::unique_ptr<NcclCommunicator> make_nccl_communicator(MPI_Comm group, const std::string& name) {
  return std::make_unique<NcclCommunicator>(group, name, NcclOptions::from_env());
}

std::unique_ptr<NcclCommunicator> make_nccl_communicator() {
  return make_nccl_communicator(MPI_COMM_WORLD, "world");
}

}  // namespace abm
