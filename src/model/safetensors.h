// safetensors files: a memory-mapped reader that touches only the tensors asked for, a
// directory view over a single file or a sharded set (model.safetensors.index.json), and
// a writer. Format: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then data.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace abm {

struct TensorEntry {
  std::string dtype;           // "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data section
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // validates the whole header
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // An owning copy converted to `dtype`. The mapped pages are released afterwards, so
  // resident memory grows only by what the caller keeps.
  at::Tensor read(const std::string& name, at::ScalarType dtype) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint8_t* base_ = nullptr;  // mmap of the whole file
  size_t size_ = 0;
  size_t data_start_ = 0;
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// The tensors of a model directory: model.safetensors, or the files named by
// model.safetensors.index.json (opened lazily, so a layer range touches only its shards).
class TensorStore {
 public:
  explicit TensorStore(const std::string& dir);
  bool has(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  std::string dtype(const std::string& name) const;
  std::vector<std::string> names() const;
  // Reads `name`, checks it has `expected` shape, converts to `dtype`.
  at::Tensor read(const std::string& name, const std::vector<int64_t>& expected,
                  at::ScalarType dtype) const;

 private:
  const SafetensorsFile& file_of(const std::string& name) const;
  std::string dir_;
  std::map<std::string, std::string> weight_map_;  // tensor -> file name
  mutable std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes tensors in the given order (atomically: temp file + rename). Supported dtypes:
// f32, f16, bf16, i64, i32, u8, i8.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

at::ScalarType dtype_from_name(const std::string& name);  // "F32" -> kFloat
std::string dtype_name(at::ScalarType t);                 // kFloat -> "F32"

}  // namespace abm
