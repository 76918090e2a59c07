#include "sharding/stage_transport.h"

#include "core/check.h"

namespace abm {
namespace {

constexpr int64_t kMagic = 0x5354475452414e53;  // "STGTRANS": catches a stray message
constexpr int64_t kMaxDims = 4;
// Header: [magic, kind, micro, dtype, ndim, dim0..dim3], int64.
constexpr int64_t kHeaderLen = 5 + kMaxDims;

const char* kind_name(int64_t kind) { return kind == 0 ? "hidden state" : "gradient"; }

std::string shape_str(at::IntArrayRef s, at::ScalarType dt) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "] " + c10::toString(dt);
}

}  // namespace

StageTransport::StageTransport(Communicator& comm, const StageMap& map, at::Device device,
                               int tag_base)
    : comm_(comm), device_(device), rank_(comm.rank()), stage_(map.stage_of(comm.rank())),
      prev_(map.prev_rank(comm.rank())), next_(map.next_rank(comm.rank())), tag_base_(tag_base) {}

void StageTransport::send_forward(const at::Tensor& h, int64_t micro) {
  ABM_CHECK(next_ >= 0, "stage ", stage_, " is the last stage: no forward neighbour");
  send(h, next_, kForward, micro);
}

at::Tensor StageTransport::recv_forward(at::IntArrayRef shape, at::ScalarType dtype,
                                        int64_t micro) {
  ABM_CHECK(prev_ >= 0, "stage ", stage_, " is the first stage: no backward neighbour");
  return recv(shape, dtype, prev_, kForward, micro);
}

void StageTransport::send_backward(const at::Tensor& g, int64_t micro) {
  ABM_CHECK(prev_ >= 0, "stage ", stage_, " is the first stage: no backward neighbour");
  send(g, prev_, kBackward, micro);
}

at::Tensor StageTransport::recv_backward(at::IntArrayRef shape, at::ScalarType dtype,
                                         int64_t micro) {
  ABM_CHECK(next_ >= 0, "stage ", stage_, " is the last stage: no forward neighbour");
  return recv(shape, dtype, next_, kBackward, micro);
}

void StageTransport::send(const at::Tensor& t, int dst, Kind kind, int64_t micro) {
  ABM_CHECK(t.dim() >= 1 && t.dim() <= kMaxDims, "stage transport: ", t.dim(),
            "-d tensor (1..4 dims supported)");
  ABM_CHECK(t.device() == device_, "stage transport: tensor on ", t.device(), ", transport on ",
            device_);
  at::Tensor header = at::zeros({kHeaderLen}, at::kLong);
  int64_t* h = header.data_ptr<int64_t>();
  h[0] = kMagic;
  h[1] = kind;
  h[2] = micro;
  h[3] = static_cast<int64_t>(t.scalar_type());
  h[4] = t.dim();
  for (int64_t i = 0; i < t.dim(); ++i) h[5 + i] = t.size(i);
  const int tag = tag_base_ + static_cast<int>(kind);
  // The header goes on the payload's device, so an NCCL communicator can carry both.
  comm_.send(header.to(device_), dst, tag);
  comm_.send(t.contiguous(), dst, tag);
}

at::Tensor StageTransport::recv(at::IntArrayRef shape, at::ScalarType dtype, int src,
                                Kind kind, int64_t micro) {
  const int tag = tag_base_ + static_cast<int>(kind);
  at::Tensor header_dev = at::empty({kHeaderLen}, at::TensorOptions(at::kLong).device(device_));
  comm_.recv(header_dev, src, tag);
  at::Tensor header = header_dev.cpu();
  const int64_t* h = header.data_ptr<int64_t>();
  ABM_REQUIRE(h[0] == kMagic && h[1] == kind && h[4] >= 1 && h[4] <= kMaxDims,
              "stage transport: rank ", rank_, " (stage ", stage_, ") got a malformed ",
              kind_name(kind), " header from rank ", src);
  std::vector<int64_t> got_shape(h + 5, h + 5 + h[4]);
  const auto got_dtype = static_cast<at::ScalarType>(h[3]);
  at::Tensor out = at::empty(got_shape, at::TensorOptions(got_dtype).device(device_));
  comm_.recv(out, src, tag);  // always drained, so the sender never blocks forever
  const bool same = got_shape == shape.vec() && got_dtype == dtype;
  ABM_REQUIRE(same && h[2] == micro, "stage transport: ", kind_name(kind), " of micro-batch ",
              h[2], " from rank ", src, " is ", shape_str(got_shape, got_dtype), ", but rank ",
              rank_, " (stage ", stage_, ") expects ", shape_str(shape, dtype),
              " of micro-batch ", micro);
  return out;
}

}  // namespace abm
