// LlamaModel: a contiguous range of decoder layers [first, last) of a LLaMA model, plus
// the embedding (only when first == 0) and final norm + head (only when last == layers).
// Loading a range reads only its tensors, so memory is proportional to the range — the
// building block of layer sharding. The whole model is the range [0, layers).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/kv_cache.h"
#include "model/llama_config.h"
#include "model/llama_layer.h"
#include "model/rope.h"
#include "model/safetensors.h"

namespace abm {

struct LoadOptions {
  int64_t first = 0;
  int64_t last = -1;                   // -1 = all layers
  at::ScalarType dtype = at::kFloat;   // compute dtype; frozen weights are stored in it,
  // unless `storage` names another: then the projection and embedding matrices stay in
  // that dtype (bf16 halves the memory) and are cast per product (project()); norms use
  // the compute dtype. Autograd paths only (ABM, eval, generate): the trainer's fused
  // backward needs one dtype.
  at::ScalarType storage = at::ScalarType::Undefined;  // Undefined = dtype
  at::Device device = at::kCPU;  // where the weights live and the model computes
  std::string attention = "auto";  // auto (sdpa on CUDA, math on the CPU) | sdpa | math
};

// at::scaled_dot_product_attention (flash / memory-efficient kernels) or the scores
// materialized in fp32 ("math"); `auto` picks by device.
bool use_sdpa(const std::string& attention, at::Device device);

at::ScalarType parse_dtype(const std::string& s, const std::string& option);  // fp32|bf16

class LlamaModel {
 public:
  static LlamaModel load(const std::string& dir, const LoadOptions& opts = {});
  // From HF-named tensors in memory (e.g. an import); shapes are checked.
  static LlamaModel from_tensors(const LlamaConfig& cfg,
                                 const std::map<std::string, at::Tensor>& tensors,
                                 at::ScalarType dtype);
  // Random weights (N(0, std), norms 1), for tests and for making new base models. On a
  // CUDA device they are drawn there (a 7B geometry needs no file and no host copy).
  static LlamaModel random(const LlamaConfig& cfg, uint64_t seed, at::ScalarType dtype,
                           double std = 0.02, at::Device device = at::kCPU);

  // Layers [first, last) of this (loaded) model as a model of their own that shares the
  // weights and the attached adapters — a stage's view of a full replica (ABM per stage).
  LlamaModel range(int64_t first, int64_t last) const;

  const LlamaConfig& config() const { return cfg_; }
  int64_t first() const { return first_; }
  int64_t last() const { return last_; }
  bool has_embedding() const { return embed_.defined(); }
  bool has_head() const { return lm_head_.defined(); }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  // Moves every weight to `device` (the meta device for shape-only tests).
  void to(at::Device device);
  void set_attention(const std::string& a) { sdpa_ = use_sdpa(a, device_); }
  // Per-layer activation recomputation when forward_layers runs under autograd (--recompute
  // on the autograd path; model/layer_recompute.h).
  void set_recompute(bool on) { recompute_ = on; }
  std::vector<DecoderLayer>& layers() { return layers_; }
  const std::vector<DecoderLayer>& layers() const { return layers_; }

  // [B, T] int64 (on any device; checked on the CPU) -> [B, T, hidden] on the model's device
  at::Tensor embed(const at::Tensor& ids) const;
  // h [B, T, hidden]; positions [B, T] (undefined = start..start+T, start = cache length);
  // allowed [B, 1, T, S] bool (undefined = causal by position); positions and allowed may
  // come from the CPU (the data layer's batches). Runs the loaded layers.
  at::Tensor forward_layers(const at::Tensor& h, at::Tensor positions = {},
                            KVCache* cache = nullptr, at::Tensor allowed = {}) const;
  at::Tensor head(const at::Tensor& h) const;  // final norm + lm_head -> [B, T, vocab] fp32
  // The whole model: ids [B, T] -> logits [B, T, vocab] fp32. Needs the full range.
  at::Tensor forward(const at::Tensor& ids, KVCache* cache = nullptr) const;

  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // HF tensor names -> weights of what is loaded (lm_head omitted when tied).
  NamedTensors named_weights() const;
  // Writes config.json + model.safetensors (needs the full range).
  void save(const std::string& dir, at::ScalarType dtype) const;

 private:
  // Reads one tensor by HF name and expected shape, already in the compute dtype.
  using Reader = std::function<at::Tensor(const std::string&, std::vector<int64_t>, at::ScalarType)>;
  static LlamaModel build(const LlamaConfig& cfg, const LoadOptions& opts,
                          const std::string& origin, const Reader& read);

  LlamaConfig cfg_;
  int64_t first_ = 0, last_ = 0;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  bool sdpa_ = false;
  bool recompute_ = false;
  at::Tensor embed_;    // [vocab, hidden]
  at::Tensor norm_;     // [hidden]
  at::Tensor lm_head_;  // [vocab, hidden]; aliases embed_ when tied and both are loaded
  std::vector<DecoderLayer> layers_;
  Rope rope_;
};

}  // namespace abm
