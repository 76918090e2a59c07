#include "checkpoints/state_broadcast.h"

#include <cstring>
#include <type_traits>

#include "checkpoints/state_fields.h"
#include "core/check.h"
#include "core/json_text.h"

namespace abm {
namespace {

// Scalars, strings and tensor headers as one byte string; tensors then travel one by one.
class Pack {
 public:
  std::string bytes;
  template <typename T>
  void put(T v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put(const std::string& s) {
    put<int64_t>(int64_t(s.size()));
    bytes += s;
  }
  template <typename T>
  void put(const std::vector<T>& v) {
    put<int64_t>(int64_t(v.size()));
    for (const T& x : v) put<T>(x);
  }
  void header(const at::Tensor& t) {
    put<int64_t>(int64_t(t.scalar_type()));
    put(t.sizes().vec());
  }
};

class Unpack {
 public:
  explicit Unpack(const std::string& b) : b_(b) {}
  template <typename T>
  T get() {
    ABM_CHECK(pos_ + sizeof(T) <= b_.size(), "broadcast state: truncated");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    auto n = size_t(get<int64_t>());
    ABM_CHECK(pos_ + n <= b_.size(), "broadcast state: truncated");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  template <typename T>
  std::vector<T> vec() {
    std::vector<T> v(size_t(get<int64_t>()));
    for (T& x : v) x = get<T>();
    return v;
  }
  template <typename T>
  void get_into(T& x) {
    if constexpr (std::is_same_v<T, std::string>) x = str();
    else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>)
      x = vec<typename T::value_type>();
    else x = get<T>();
  }
  at::Tensor empty_like_header() {
    auto dtype = at::ScalarType(get<int64_t>());
    return at::empty(vec<int64_t>(), at::TensorOptions().dtype(dtype));
  }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

// One visitor (state_fields.h) for both directions: root and receivers walk the same list.
void pack_scalars(Pack& p, const CheckpointState& s) {
  auto put = [&](const char*, const auto& field, bool) { p.put(field); };
  visit_root_fields(s, put);
  visit_optimizer_fields(s.optimizer, put);
  visit_scheduler_fields(s.scheduler, put);
  visit_rng_fields(s, put);
  p.put(s.lora ? s.lora->to_json().dump() : std::string());
  p.put<int64_t>(s.abm ? 1 : 0);
  if (s.abm) {
    visit_abm_fields(*s.abm, put);
    visit_abm_series(*s.abm, put);
  }
}

void unpack_scalars(Unpack& u, CheckpointState& s) {
  auto get = [&](const char*, auto& field, bool) { u.get_into(field); };
  visit_root_fields(s, get);
  visit_optimizer_fields(s.optimizer, get);
  visit_scheduler_fields(s.scheduler, get);
  visit_rng_fields(s, get);
  std::string lora = u.str();
  s.lora.reset();
  if (!lora.empty()) s.lora = LoraConfig::from_json(parse_json(lora, "broadcast"), "broadcast");
  s.abm.reset();
  if (u.get<int64_t>()) {
    AbmProvenance a;
    visit_abm_fields(a, get);
    visit_abm_series(a, get);
    s.abm = a;
  }
}

void broadcast_bytes(std::string& bytes, Communicator& comm, int root) {
  at::Tensor n = at::tensor({int64_t(bytes.size())}, at::kLong);
  comm.broadcast(n, root);
  at::Tensor buf = at::empty({n.item<int64_t>()}, at::kByte);
  if (comm.rank() == root) std::memcpy(buf.data_ptr(), bytes.data(), bytes.size());
  comm.broadcast(buf, root);
  bytes.assign(static_cast<const char*>(buf.data_ptr()), size_t(buf.numel()));
}

}  // namespace

void broadcast_state(CheckpointState& s, Communicator& comm, int root) {
  const bool me = comm.rank() == root;
  std::string bytes;
  if (me) {
    Pack p;
    pack_scalars(p, s);
    for (const NamedTensors* list : {&s.trainable, &s.rng}) {
      p.put<int64_t>(int64_t(list->size()));
      for (const auto& [name, t] : *list) {
        p.put(name);
        p.header(t);
      }
    }
    bytes = std::move(p.bytes);
  }
  broadcast_bytes(bytes, comm, root);
  if (!me) {
    Unpack u(bytes);
    unpack_scalars(u, s);
    for (NamedTensors* list : {&s.trainable, &s.rng}) {
      list->clear();
      for (int64_t i = 0, n = u.get<int64_t>(); i < n; ++i) {
        std::string name = u.str();
        list->emplace_back(name, u.empty_like_header());
      }
    }
    s.optimizer.exp_avg.clear();
    s.optimizer.exp_avg_sq.clear();
    for (const auto& [name, t] : s.trainable) {
      s.optimizer.exp_avg.push_back(at::empty_like(t));
      s.optimizer.exp_avg_sq.push_back(at::empty_like(t));
    }
  }
  auto send = [&](at::Tensor& t) {
    if (me) t = t.contiguous();
    comm.broadcast(t, root);
  };
  for (auto& [name, t] : s.trainable) send(t);
  for (auto& t : s.optimizer.exp_avg) send(t);
  for (auto& t : s.optimizer.exp_avg_sq) send(t);
  for (auto& [name, t] : s.rng) send(t);
}

}  // namespace abm
