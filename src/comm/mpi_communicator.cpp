#include "comm/mpi_communicator.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/mpi_check.h"
#include "core/mpi_watchdog.h"
#include "core/runtime.h"

// A blocking call: it waits under the watchdog, which ends the rank when the peers do not
// answer within ABM_COMM_TIMEOUT_S (core/mpi_watchdog.h).
#define ABM_MPI_WAIT(op, call)          \
  do {                                  \
    ::abm::MpiWatch watch_(op, peers_); \
    ABM_MPI_CHECK(call);                \
  } while (0)

namespace abm {
namespace {

// "1@abm-node2, 3@abm-node2": the members of `comm` the watchdog message names, by world
// rank. A lost peer cannot be told apart from a slow one, so the ranks on other hosts are
// named (the usual suspects when a node or link goes); on one host, every other rank.
std::string describe_peers(MPI_Comm comm, int rank, int size) {
  constexpr int kLen = 64, kShown = 8;
  char mine[kLen] = {0};
  std::snprintf(mine, kLen, "%s", Runtime::host().c_str());
  std::vector<char> hosts(static_cast<size_t>(size) * kLen);
  ABM_MPI_CHECK(MPI_Allgather(mine, kLen, MPI_CHAR, hosts.data(), kLen, MPI_CHAR, comm));
  std::vector<int> local(size), world(size);
  for (int r = 0; r < size; ++r) local[r] = r;
  MPI_Group group, world_group;
  ABM_MPI_CHECK(MPI_Comm_group(comm, &group));
  ABM_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
  ABM_MPI_CHECK(MPI_Group_translate_ranks(group, size, local.data(), world_group, world.data()));
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  auto host = [&](int r) { return std::string(&hosts[static_cast<size_t>(r) * kLen]); };
  bool remote = false;
  for (int r = 0; r < size; ++r) remote |= host(r) != host(rank);
  std::string out;
  int shown = 0, left = 0;
  for (int r = 0; r < size; ++r) {
    if (r == rank || (remote && host(r) == host(rank))) continue;
    if (shown == kShown) { ++left; continue; }
    out += cat(out.empty() ? "" : ", ", world[r], "@", host(r));
    ++shown;
  }
  if (left > 0) out += cat(" and ", left, " more");
  return cat(remote ? "the ranks on other hosts (" : "ranks (", out, ")");
}

// inout[i] = in[i] (+ or max) inout[i] for a 2-byte float type, computed in float and
// rounded back once (round-to-nearest-even), like a bf16/fp16 tensor op would.
// Max propagates NaN, as torch.max does.
template <typename H, bool kMax>
void half_reduce(void* in, void* inout, int* len, MPI_Datatype*) {
  const H* a = static_cast<const H*>(in);
  H* b = static_cast<H*>(inout);
  for (int i = 0; i < *len; ++i) {
    float x = static_cast<float>(a[i]), y = static_cast<float>(b[i]);
    b[i] = H(kMax ? ((x > y || x != x) ? x : y) : x + y);
  }
}

// Calls f(offset, count) over [0, n) in pieces of at most `chunk` elements, because MPI
// counts are int.
template <typename F>
void for_chunks(int64_t n, int64_t chunk, F&& f) {
  for (int64_t off = 0; off < n; off += chunk)
    f(off, static_cast<int>(std::min(chunk, n - off)));
}

// Address of element `i` of contiguous t.
char* at_elem(const at::Tensor& t, int64_t i) {
  return static_cast<char*>(t.data_ptr()) + i * static_cast<int64_t>(t.element_size());
}

// Device tensors through host memory (the fallback when NCCL is not used): f runs on a
// CPU copy, whose result is copied back.
template <typename F>
void staged(at::Tensor& t, F&& f) {
  at::Tensor h = t.cpu().contiguous();
  f(h);
  t.copy_(h);
}

}  // namespace

MpiCommunicator::MpiCommunicator(int64_t max_chunk, MPI_Comm group) : max_chunk_(max_chunk) {
  ABM_CHECK(max_chunk >= 1 && max_chunk <= kMaxChunk, "max_chunk ", max_chunk,
            " outside [1, 2^30]");
  int inited = 0;
  ABM_MPI_CHECK(MPI_Initialized(&inited));
  ABM_CHECK(inited, "MPI is not initialized (call Runtime::init first)");
  // A private communicator: our tags and collectives never match anyone else's.
  ABM_MPI_CHECK(MPI_Comm_dup(group, &comm_));
  ABM_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  ABM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  ABM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  peers_ = describe_peers(comm_, rank_, size_);
  // Two distinct types, so a bf16 op can never be applied to fp16 data by mistake.
  for (MPI_Datatype* dt : {&bf16_, &fp16_}) {
    ABM_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, dt));
    ABM_MPI_CHECK(MPI_Type_commit(dt));
  }
  ABM_MPI_CHECK(MPI_Op_create(&half_reduce<c10::BFloat16, false>, 1, &bf16_sum_));
  ABM_MPI_CHECK(MPI_Op_create(&half_reduce<c10::BFloat16, true>, 1, &bf16_max_));
  ABM_MPI_CHECK(MPI_Op_create(&half_reduce<c10::Half, false>, 1, &fp16_sum_));
  ABM_MPI_CHECK(MPI_Op_create(&half_reduce<c10::Half, true>, 1, &fp16_max_));
}

MpiCommunicator::~MpiCommunicator() {
  // Return codes are ignored on purpose: a destructor must not throw, and after
  // MPI_Finalize the handles are already gone.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (MPI_Op* op : {&bf16_sum_, &bf16_max_, &fp16_sum_, &fp16_max_})
    if (*op != MPI_OP_NULL) MPI_Op_free(op);
  for (MPI_Datatype* dt : {&bf16_, &fp16_})
    if (*dt != MPI_DATATYPE_NULL) MPI_Type_free(dt);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

// Validates t (CPU, contiguous, supported dtype) and returns its element datatype.
MPI_Datatype MpiCommunicator::mpi_type(const at::Tensor& t, const char* what) const {
  ABM_CHECK(t.defined(), what, ": undefined tensor");
  ABM_CHECK(t.device().is_cpu(), what, ": MPI backend needs a CPU (or CUDA, staged) tensor, "
            "got device ", t.device());
  ABM_CHECK(t.is_contiguous(), what, ": tensor must be contiguous, got sizes ", t.sizes(),
            " strides ", t.strides());
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    case at::kBFloat16: return bf16_;
    case at::kHalf: return fp16_;
    default: ABM_CHECK(false, what, ": unsupported dtype ", t.scalar_type());
  }
  return MPI_DATATYPE_NULL;  // unreachable
}

MPI_Op MpiCommunicator::mpi_op(at::ScalarType dtype, ReduceOp op) const {
  bool sum = op == ReduceOp::Sum;
  if (dtype == at::kBFloat16) return sum ? bf16_sum_ : bf16_max_;
  if (dtype == at::kHalf) return sum ? fp16_sum_ : fp16_max_;
  return sum ? MPI_SUM : MPI_MAX;
}

void MpiCommunicator::all_reduce(at::Tensor& t, ReduceOp op) {
  if (t.is_cuda()) return staged(t, [&](at::Tensor& h) { all_reduce(h, op); });
  MPI_Datatype dt = mpi_type(t, "all_reduce");
  MPI_Op mop = mpi_op(t.scalar_type(), op);
  for_chunks(t.numel(), max_chunk_, [&](int64_t off, int n) {
    ABM_MPI_WAIT("all_reduce", MPI_Allreduce(MPI_IN_PLACE, at_elem(t, off), n, dt, mop, comm_));
  });
}

void MpiCommunicator::broadcast(at::Tensor& t, int root) {
  if (t.is_cuda()) return staged(t, [&](at::Tensor& h) { broadcast(h, root); });
  MPI_Datatype dt = mpi_type(t, "broadcast");
  ABM_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " outside [0, ", size_, ")");
  for_chunks(t.numel(), max_chunk_, [&](int64_t off, int n) {
    ABM_MPI_WAIT("broadcast", MPI_Bcast(at_elem(t, off), n, dt, root, comm_));
  });
}

// out: [size * n], rank-major. Chunk k of every rank lands at out[r * n + k * chunk]:
// the receive type is `c` elements resized to an extent of n elements, so MPI's implicit
// per-rank displacement (rank * extent) steps over whole rank blocks without int overflow.
at::Tensor MpiCommunicator::all_gather(const at::Tensor& mine) {
  if (mine.is_cuda()) return all_gather(mine.cpu()).to(mine.device());
  MPI_Datatype dt = mpi_type(mine, "all_gather");
  const int64_t n = mine.numel(), esize = mine.element_size();
  at::Tensor out = at::empty({size_ * n}, mine.options());
  for_chunks(n, max_chunk_, [&](int64_t off, int c) {
    MPI_Datatype block, strided;
    ABM_MPI_CHECK(MPI_Type_contiguous(c, dt, &block));
    ABM_MPI_CHECK(MPI_Type_create_resized(block, 0, static_cast<MPI_Aint>(n * esize),
                                          &strided));
    ABM_MPI_CHECK(MPI_Type_commit(&strided));
    ABM_MPI_WAIT("all_gather", MPI_Allgather(at_elem(mine, off), c, dt, at_elem(out, off), 1,
                                             strided, comm_));
    ABM_MPI_CHECK(MPI_Type_free(&strided));
    ABM_MPI_CHECK(MPI_Type_free(&block));
  });
  return out;
}

// Returns one flat tensor per rank, all views into one buffer [sum of numels].
// Allgatherv displacements are int, so when the total exceeds max_chunk each round moves
// at most max_chunk/size elements per rank through a staging buffer [<= max_chunk] whose
// displacements fit, and copies them to their place in the output.
std::vector<at::Tensor> MpiCommunicator::all_gather_v(const at::Tensor& mine) {
  if (mine.is_cuda()) {
    std::vector<at::Tensor> parts = all_gather_v(mine.cpu());
    for (at::Tensor& p : parts) p = p.to(mine.device());
    return parts;
  }
  MPI_Datatype dt = mpi_type(mine, "all_gather_v");
  // meta: [size, 2] = (numel, dtype) of every rank; the dtype agreement check runs on
  // the same gathered data everywhere, so all ranks fail together.
  int64_t my_meta[2] = {mine.numel(), static_cast<int64_t>(mine.scalar_type())};
  std::vector<int64_t> meta(2 * size_);
  ABM_MPI_WAIT("all_gather_v",
               MPI_Allgather(my_meta, 2, MPI_INT64_T, meta.data(), 2, MPI_INT64_T, comm_));
  std::vector<int64_t> count(size_), offset(size_ + 1, 0);
  for (int r = 0; r < size_; ++r) {
    ABM_CHECK(meta[2 * r + 1] == my_meta[1], "all_gather_v: rank ", r, " has dtype ",
              static_cast<at::ScalarType>(meta[2 * r + 1]), ", rank ", rank_, " has ",
              mine.scalar_type());
    count[r] = meta[2 * r];
    offset[r + 1] = offset[r] + count[r];
  }
  const int64_t total = offset[size_], esize = mine.element_size();
  at::Tensor out = at::empty({total}, mine.options());
  std::vector<int> counts(size_), displs(size_);

  if (total <= max_chunk_) {  // one call, straight into the output
    for (int r = 0; r < size_; ++r) {
      counts[r] = static_cast<int>(count[r]);
      displs[r] = static_cast<int>(offset[r]);
    }
    ABM_MPI_WAIT("all_gather_v", MPI_Allgatherv(mine.data_ptr(), counts[rank_], dt,
                                                out.data_ptr(), counts.data(), displs.data(),
                                                dt, comm_));
  } else {
    const int64_t per_rank = std::max<int64_t>(1, max_chunk_ / size_);
    const int64_t most = *std::max_element(count.begin(), count.end());
    at::Tensor stage = at::empty({per_rank * size_}, mine.options());  // [size * per_rank]
    for (int64_t k = 0; k * per_rank < most; ++k) {
      const int64_t start = k * per_rank;  // element offset inside every rank's block
      int pos = 0;
      for (int r = 0; r < size_; ++r) {
        counts[r] = static_cast<int>(std::clamp<int64_t>(count[r] - start, 0, per_rank));
        displs[r] = pos;
        pos += counts[r];
      }
      ABM_MPI_WAIT("all_gather_v", MPI_Allgatherv(at_elem(mine, std::min(start, mine.numel())),
                                                  counts[rank_], dt, stage.data_ptr(),
                                                  counts.data(), displs.data(), dt, comm_));
      for (int r = 0; r < size_; ++r)
        std::memcpy(at_elem(out, offset[r] + start), at_elem(stage, displs[r]),
                    static_cast<size_t>(counts[r]) * esize);
    }
  }
  std::vector<at::Tensor> parts;
  for (int r = 0; r < size_; ++r) parts.push_back(out.narrow(0, offset[r], count[r]));
  return parts;
}

// Chunks of one message keep their order: MPI does not overtake messages with the same
// (source, tag, communicator).
void MpiCommunicator::send(const at::Tensor& t, int dst, int tag) {
  if (t.is_cuda()) return send(t.cpu(), dst, tag);
  MPI_Datatype dt = mpi_type(t, "send");
  ABM_CHECK(dst >= 0 && dst < size_, "send: destination ", dst, " outside [0, ", size_, ")");
  for_chunks(t.numel(), max_chunk_, [&](int64_t off, int n) {
    ABM_MPI_WAIT("send", MPI_Send(at_elem(t, off), n, dt, dst, tag, comm_));
  });
}

void MpiCommunicator::recv(at::Tensor& t, int src, int tag) {
  if (t.is_cuda()) return staged(t, [&](at::Tensor& h) { recv(h, src, tag); });
  MPI_Datatype dt = mpi_type(t, "recv");
  ABM_CHECK(src >= 0 && src < size_, "recv: source ", src, " outside [0, ", size_, ")");
  for_chunks(t.numel(), max_chunk_, [&](int64_t off, int n) {
    MPI_Status st;
    ABM_MPI_WAIT("recv", MPI_Recv(at_elem(t, off), n, dt, src, tag, comm_, &st));
    int got = 0;
    ABM_MPI_CHECK(MPI_Get_count(&st, dt, &got));
    // A shorter message means sender and receiver disagree on the tensor size.
    ABM_CHECK(got == n, "recv: expected ", n, " elements from rank ", src, " at offset ",
              off, ", got ", got);
  });
}

void MpiCommunicator::barrier() { ABM_MPI_WAIT("barrier", MPI_Barrier(comm_)); }

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

std::unique_ptr<Communicator> make_mpi_subgroup(int color, int key) {
  MPI_Comm sub = MPI_COMM_NULL;
  ABM_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &sub));
  auto c = std::make_unique<MpiCommunicator>(MpiCommunicator::kMaxChunk, sub);
  ABM_MPI_CHECK(MPI_Comm_free(&sub));  // the communicator keeps its own duplicate
  return c;
}

}  // namespace abm
