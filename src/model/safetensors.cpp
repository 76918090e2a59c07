#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/json_text.h"

namespace abm {
namespace {

const std::map<std::string, at::ScalarType>& dtype_table() {
  static const std::map<std::string, at::ScalarType> t = {
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble},
      {"I64", at::kLong},  {"I32", at::kInt},  {"U8", at::kByte},       {"I8", at::kChar}};
  return t;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

at::ScalarType dtype_from_name(const std::string& name) {
  auto it = dtype_table().find(name);
  ABM_REQUIRE(it != dtype_table().end(), "unsupported dtype ", name);
  return it->second;
}

std::string dtype_name(at::ScalarType t) {
  for (auto& [k, v] : dtype_table())
    if (v == t) return k;
  throw Error(cat("dtype ", c10::toString(t), " cannot be stored in safetensors"));
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  require_regular_file(path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ABM_REQUIRE(fd_ >= 0, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st;
  ABM_SYS_CHECK(::fstat(fd_, &st), path);
  size_ = static_cast<size_t>(st.st_size);
  ABM_REQUIRE(size_ >= 8, path, ": truncated safetensors file (", size_, " bytes, no header)");
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
  ABM_REQUIRE(p != MAP_FAILED, path, ": mmap failed (", std::strerror(errno), ")");
  base_ = static_cast<uint8_t*>(p);

  uint64_t n = 0;
  std::memcpy(&n, base_, 8);  // little-endian on every platform we build for
  ABM_REQUIRE(n <= size_ - 8, path, ": header length ", n, " runs past end of file (",
              size_, " bytes)");
  data_start_ = 8 + n;
  nlohmann::json h =
      parse_json(std::string_view(reinterpret_cast<const char*>(base_) + 8, n), path + ": header");
  ABM_REQUIRE(h.is_object(), path, ": header is not a JSON object");
  const uint64_t data_size = size_ - data_start_;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      for (auto& [k, mv] : v.items())
        metadata_[k] = mv.is_string() ? mv.get<std::string>() : mv.dump();
      continue;
    }
    TensorEntry e;
    try {
      e.dtype = v.at("dtype").get<std::string>();
      // nlohmann would convert 256.5 to 256 (and 1e300 to an int64 with undefined
      // behaviour): floats are refused here; other types and signs are checked below.
      for (const char* key : {"shape", "data_offsets"})
        for (const auto& d : v.at(key))
          ABM_REQUIRE(!d.is_number_float(), path, ": tensor ", name, ": ", key,
                      " must hold whole numbers, got ", d.dump());
      e.shape = v.at("shape").get<std::vector<int64_t>>();
      auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      ABM_REQUIRE(off.size() == 2, path, ": tensor ", name, ": data_offsets needs 2 values");
      e.begin = off[0];
      e.end = off[1];
    } catch (const nlohmann::json::exception& ex) {
      throw Error(cat(path, ": tensor ", name, ": malformed header entry: ", ex.what()));
    }
    auto dt = dtype_table().find(e.dtype);
    ABM_REQUIRE(dt != dtype_table().end(), path, ": tensor ", name, " has unsupported dtype ",
                e.dtype, " (supported: F32, F16, BF16, F64, I64, I32, U8, I8)");
    // Overflow-safe: a shape like [2^62 + 1] must not wrap around to a small byte count.
    uint64_t bytes = c10::elementSize(dt->second);
    bool wraps = false;
    for (auto d : e.shape) {
      ABM_REQUIRE(d >= 0, path, ": tensor ", name, " has a negative dimension");
      wraps = wraps || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes);
    }
    ABM_REQUIRE(!wraps && e.end >= e.begin && e.end - e.begin == bytes,
                path, ": tensor ", name, ": data_offsets [", e.begin, ", ", e.end,
                ") do not match shape ", shape_str(e.shape), " of ", e.dtype);
    ABM_REQUIRE(e.end <= data_size, path, ": truncated: tensor ", name, " ends at byte ",
                e.end, " but the data section has only ", data_size, " bytes");
    entries_[name] = std::move(e);
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  ABM_REQUIRE(it != entries_.end(), path_, ": tensor ", name, " not found");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> r;
  for (auto& [k, v] : entries_) r.push_back(k);
  return r;
}

at::Tensor SafetensorsFile::read(const std::string& name, at::ScalarType dtype) const {
  const TensorEntry& e = entry(name);
  uint8_t* src = base_ + data_start_ + e.begin;
  // Borrow the mapped bytes, convert into an owning tensor, then let the kernel drop the
  // pages we touched (they are file-backed and clean, so this is free).
  at::Tensor view = at::from_blob(src, e.shape, at::TensorOptions().dtype(dtype_from_name(e.dtype)));
  at::Tensor out = view.to(dtype, /*non_blocking=*/false, /*copy=*/true).contiguous();
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t lo = reinterpret_cast<uintptr_t>(src) & ~(page - 1);
  uintptr_t hi = reinterpret_cast<uintptr_t>(src) + (e.end - e.begin);
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  return out;
}

TensorStore::TensorStore(const std::string& dir) : dir_(dir) {
  require_dir(dir, "model");
  std::string index = dir + "/model.safetensors.index.json";
  std::string single = dir + "/model.safetensors";
  if (file_exists(index)) {
    nlohmann::json j = parse_json(read_small_file(index), index);
    try {
      for (auto& [k, v] : j.at("weight_map").items()) weight_map_[k] = v.get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(index, ": malformed index: ", e.what()));
    }
    for (auto& [k, f] : weight_map_) {
      // Shards live next to the index (as HF writes them): no path may lead elsewhere.
      ABM_REQUIRE(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..", index,
                  ": shard \"", f, "\" (for ", k, ") is not a file name in ", dir);
      ABM_REQUIRE(file_exists(dir + "/" + f), index, ": shard ", f, " (for ", k,
                  ") does not exist");
    }
  } else {
    ABM_REQUIRE(file_exists(single), dir, ": no model.safetensors or model.safetensors.index.json");
    auto& f = open_["model.safetensors"];
    f = std::make_unique<SafetensorsFile>(single);
    for (auto& n : f->names()) weight_map_[n] = "model.safetensors";
  }
}

const SafetensorsFile& TensorStore::file_of(const std::string& name) const {
  auto it = weight_map_.find(name);
  ABM_REQUIRE(it != weight_map_.end(), dir_, ": tensor ", name, " not found");
  auto& f = open_[it->second];
  if (!f) f = std::make_unique<SafetensorsFile>(dir_ + "/" + it->second);
  return *f;
}

bool TensorStore::has(const std::string& name) const { return weight_map_.count(name) > 0; }
std::vector<int64_t> TensorStore::shape(const std::string& name) const {
  return file_of(name).entry(name).shape;
}
std::string TensorStore::dtype(const std::string& name) const {
  return file_of(name).entry(name).dtype;
}
std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> r;
  for (auto& [k, v] : weight_map_) r.push_back(k);
  return r;
}

at::Tensor TensorStore::read(const std::string& name, const std::vector<int64_t>& expected,
                             at::ScalarType dtype) const {
  const SafetensorsFile& f = file_of(name);
  const TensorEntry& e = f.entry(name);
  ABM_REQUIRE(e.shape == expected, f.path(), ": tensor ", name, " has shape ",
              shape_str(e.shape), ", expected ", shape_str(expected));
  return f.read(name, dtype);
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  std::vector<at::Tensor> data;
  for (auto& [name, t0] : tensors) {
    at::Tensor t = t0.detach().cpu().contiguous();
    uint64_t bytes = t.numel() * t.element_size();
    h[name] = {{"dtype", dtype_name(t.scalar_type())},
               {"shape", t.sizes().vec()},
               {"data_offsets", {off, off + bytes}}};
    off += bytes;
    data.push_back(t);
  }
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // keep data 8-byte aligned
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ABM_REQUIRE(out, tmp, ": cannot write (", std::strerror(errno), ")");
    uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(header.data(), header.size());
    for (auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    out.flush();
    ABM_REQUIRE(out.good(), tmp, ": write failed (disk full?)");
  }
  ABM_SYS_CHECK(std::rename(tmp.c_str(), path.c_str()), tmp, " -> ", path);
}

}  // namespace abm
