#include "model/llama_model.h"

#include <sys/stat.h>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "model/layer_recompute.h"
#include "model/projection.h"

namespace abm {
namespace {

std::string layer_name(int64_t i, const char* part) {
  return cat("model.layers.", i, ".", part, ".weight");
}

}  // namespace

at::ScalarType parse_dtype(const std::string& s, const std::string& option) {
  if (s == "fp32" || s == "float32") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  throw Error(cat(option, ": unknown dtype \"", s, "\" (use fp32 or bf16)"));
}

bool use_sdpa(const std::string& attention, at::Device device) {
  ABM_REQUIRE(attention == "auto" || attention == "sdpa" || attention == "math",
              "--attention: \"", attention, "\" is not auto, sdpa or math");
  return attention == "sdpa" || (attention == "auto" && device.is_cuda());
}

LlamaModel LlamaModel::load(const std::string& dir, const LoadOptions& opts) {
  require_dir(dir, "model");
  LlamaConfig cfg = LlamaConfig::load(dir + "/config.json");
  TensorStore store(dir);
  return build(
      cfg, opts, dir,
      [&](const std::string& n, std::vector<int64_t> shape, at::ScalarType dtype) {
        return store.read(n, shape, dtype);
      });
}

LlamaModel LlamaModel::from_tensors(const LlamaConfig& cfg,
                                    const std::map<std::string, at::Tensor>& tensors,
                                    at::ScalarType dtype) {
  LoadOptions opts;
  opts.dtype = dtype;
  return build(
      cfg, opts, "(in memory)",
      [&](const std::string& n, std::vector<int64_t> shape, at::ScalarType dtype) {
        auto it = tensors.find(n);
        ABM_REQUIRE(it != tensors.end(), "tensor ", n, " not found");
        ABM_REQUIRE(it->second.sizes().vec() == shape, "tensor ", n, " has the wrong shape");
        return it->second.to(dtype).contiguous();
      });
}

LlamaModel LlamaModel::build(const LlamaConfig& c, const LoadOptions& opts,
                             const std::string& origin, const Reader& rd) {
  LlamaModel m;
  m.cfg_ = c;
  m.first_ = opts.first;
  m.last_ = opts.last < 0 ? c.layers : opts.last;
  ABM_REQUIRE(m.first_ >= 0 && m.first_ < m.last_ && m.last_ <= c.layers, origin,
              ": layer range [", m.first_, ", ", m.last_, ") is outside [0, ", c.layers, "]");
  m.dtype_ = opts.dtype;
  m.device_ = opts.device;
  m.sdpa_ = use_sdpa(opts.attention, opts.device);
  m.rope_ = Rope(c);
  const int64_t H = c.hidden;
  const at::ScalarType D = opts.dtype;  // norms
  const at::ScalarType W = opts.storage == at::ScalarType::Undefined ? D : opts.storage;  // matrices
  if (m.first_ == 0) m.embed_ = rd("model.embed_tokens.weight", {c.vocab, H}, W);
  for (int64_t i = m.first_; i < m.last_; ++i) {
    DecoderLayer l;
    l.input_norm = rd(layer_name(i, "input_layernorm"), {H}, D);
    l.post_norm = rd(layer_name(i, "post_attention_layernorm"), {H}, D);
    for_each_projection(l, [&](const ProjInfo& p, Linear& lin) {
      const ModuleDims d = projection_dims(c, p.id);
      lin.weight = rd(projection_module_name(i, p.id) + ".weight", {d.out, d.in}, W);
    });
    m.layers_.push_back(std::move(l));
  }
  if (m.last_ == c.layers) {
    m.norm_ = rd("model.norm.weight", {H}, D);
    if (c.tie_embeddings)
      m.lm_head_ = m.embed_.defined() ? m.embed_ : rd("model.embed_tokens.weight", {c.vocab, H}, W);
    else
      m.lm_head_ = rd("lm_head.weight", {c.vocab, H}, W);
  }
  if (!opts.device.is_cpu()) m.to(opts.device);
  return m;
}

void LlamaModel::to(at::Device device) {
  at::NoGradGuard ng;
  auto move = [&](at::Tensor& t) {
    if (t.defined()) t = t.to(device);
  };
  const bool tied = lm_head_.defined() && embed_.defined() && lm_head_.is_same(embed_);
  move(embed_);
  move(norm_);
  if (tied) lm_head_ = embed_;
  else move(lm_head_);
  for (DecoderLayer& l : layers_) {
    move(l.input_norm);
    move(l.post_norm);
    for_each_projection(l, [&](const ProjInfo&, Linear& lin) { move(lin.weight); });
  }
  device_ = device;
}

LlamaModel LlamaModel::random(const LlamaConfig& c, uint64_t seed, at::ScalarType dtype,
                              double std, at::Device device) {
  LlamaModel m;
  m.cfg_ = c;
  m.first_ = 0;
  m.last_ = c.layers;
  m.dtype_ = dtype;
  m.device_ = device;
  m.sdpa_ = use_sdpa("auto", device);
  m.rope_ = Rope(c);
  // The CPU draws in fp32 from its own generator (the weights every CPU test expects); a
  // GPU draws in place in the weights' dtype from a seeded copy of its generator.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  if (device.is_cuda()) {
    gen = at::globalContext().defaultGenerator(device).clone();
    gen.set_current_seed(seed);
  }
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  auto w = [&](std::vector<int64_t> shape) {
    if (device.is_cuda()) return at::empty(shape, opts).normal_(0.0, std, gen);
    return at::normal(0.0, std, shape, gen, at::TensorOptions().dtype(at::kFloat)).to(dtype);
  };
  auto ones = [&](int64_t n) { return at::ones({n}, opts); };
  const int64_t H = c.hidden;
  m.embed_ = w({c.vocab, H});
  for (int64_t i = 0; i < c.layers; ++i) {
    DecoderLayer l;
    l.input_norm = ones(H);
    l.post_norm = ones(H);
    // Drawn in projections() order: the weights every seeded test expects.
    for_each_projection(l, [&](const ProjInfo& p, Linear& lin) {
      const ModuleDims d = projection_dims(c, p.id);
      lin.weight = w({d.out, d.in});
    });
    m.layers_.push_back(std::move(l));
  }
  m.norm_ = ones(H);
  m.lm_head_ = c.tie_embeddings ? m.embed_ : w({c.vocab, H});
  if (!device.is_cpu() && !device.is_cuda()) m.to(device);  // e.g. meta
  return m;
}

LlamaModel LlamaModel::range(int64_t first, int64_t last) const {
  ABM_CHECK(first_ <= first && first < last && last <= last_, "layer range [", first, ", ", last,
            ") is not inside the loaded [", first_, ", ", last_, ")");
  LlamaModel m;
  m.cfg_ = cfg_;
  m.first_ = first;
  m.last_ = last;
  m.dtype_ = dtype_;
  m.device_ = device_;
  m.sdpa_ = sdpa_;
  m.recompute_ = recompute_;
  m.rope_ = rope_;
  if (first == 0) m.embed_ = embed_;
  if (last == cfg_.layers) {
    m.norm_ = norm_;
    m.lm_head_ = lm_head_;
  }
  m.layers_.assign(layers_.begin() + (first - first_), layers_.begin() + (last - first_));
  return m;
}

at::Tensor LlamaModel::embed(const at::Tensor& ids) const {
  ABM_CHECK(embed_.defined(), "this rank's layer range [", first_, ", ", last_,
            ") has no embedding");
  // Checked where the ids are made (the CPU: no device round trip per micro-batch).
  if (ids.is_cpu())
    ABM_REQUIRE(ids.numel() == 0 || (ids.min().item<int64_t>() >= 0 &&
                                     ids.max().item<int64_t>() < cfg_.vocab),
                "token id out of range [0, ", cfg_.vocab, ")");
  // .to(dtype_): a no-op unless the embedding is stored narrower.
  return at::embedding(embed_, to_device(ids, embed_.device())).to(dtype_);
}

at::Tensor LlamaModel::forward_layers(const at::Tensor& h, at::Tensor positions,
                                      KVCache* cache, at::Tensor allowed) const {
  const int64_t B = h.size(0), T = h.size(1);
  const int64_t start = cache ? cache->length : 0;
  if (cache) ABM_CHECK(start + T <= cache->capacity, "KV cache full: ", start + T, " > ",
                       cache->capacity);
  const auto longs = at::TensorOptions().dtype(at::kLong).device(h.device());
  if (!positions.defined()) positions = at::arange(start, start + T, longs).unsqueeze(0).expand({B, T});
  positions = to_device(positions, h.device());
  // Batches give positions 0..T-1 per unpacked row, so "no mask, no cache" is plain causal.
  const bool plain_causal = !allowed.defined() && start == 0;
  if (!allowed.defined()) {
    // Causal: key j (absolute position j in the cache) is visible to query i if j <= pos_i.
    at::Tensor keys = at::arange(0, start + T, longs);                    // [S]
    allowed = (keys.view({1, 1, -1}) <= positions.unsqueeze(-1)).unsqueeze(1);  // [B,1,T,S]
  }
  allowed = to_device(allowed, h.device());
  // Plain causal attention over this call's keys: SDPA takes it as is_causal (flash).
  at::Tensor mask = sdpa_ && plain_causal ? at::Tensor() : allowed;
  auto [cos, sin] = rope_.tables(positions, dtype_);
  at::Tensor x = h;
  for (size_t i = 0; i < layers_.size(); ++i) {
    LayerCache lc;
    if (cache) lc = {&cache->k[i], &cache->v[i], start};
    if (recompute_ && !cache && at::GradMode::is_enabled())
      x = recomputed_layer(layers_[i], cfg_, x, cos, sin, mask, sdpa_);
    else
      x = layers_[i].forward(cfg_, x, cos, sin, mask, lc, sdpa_);
  }
  if (cache) cache->length = start + T;
  return x;
}

at::Tensor LlamaModel::head(const at::Tensor& h) const {
  ABM_CHECK(lm_head_.defined(), "this rank's layer range [", first_, ", ", last_,
            ") has no head");
  return project(rms_norm(h, norm_, cfg_.rms_eps), lm_head_).to(at::kFloat);
}

at::Tensor LlamaModel::forward(const at::Tensor& ids, KVCache* cache) const {
  return head(forward_layers(embed(ids), {}, cache));
}

KVCache LlamaModel::make_cache(int64_t batch, int64_t capacity) const {
  KVCache kv;
  kv.capacity = capacity;
  auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    kv.k.push_back(at::zeros({batch, cfg_.kv_heads, capacity, cfg_.head_dim}, opts));
    kv.v.push_back(at::zeros({batch, cfg_.kv_heads, capacity, cfg_.head_dim}, opts));
  }
  return kv;
}

NamedTensors LlamaModel::named_weights() const {
  NamedTensors out;
  if (embed_.defined()) out.push_back({"model.embed_tokens.weight", embed_});
  for (size_t j = 0; j < layers_.size(); ++j) {
    const DecoderLayer& l = layers_[j];
    int64_t i = first_ + static_cast<int64_t>(j);
    out.push_back({layer_name(i, "input_layernorm"), l.input_norm});
    auto proj = [&](Proj p) {
      out.push_back({projection_module_name(i, p) + ".weight", projection(l, p).weight});
    };
    for (Proj p : {Proj::q, Proj::k, Proj::v, Proj::o}) proj(p);
    out.push_back({layer_name(i, "post_attention_layernorm"), l.post_norm});
    for (Proj p : {Proj::gate, Proj::up, Proj::down}) proj(p);
  }
  if (norm_.defined()) out.push_back({"model.norm.weight", norm_});
  if (lm_head_.defined() && !cfg_.tie_embeddings) out.push_back({"lm_head.weight", lm_head_});
  return out;
}

void LlamaModel::save(const std::string& dir, at::ScalarType dtype) const {
  ABM_CHECK(first_ == 0 && last_ == cfg_.layers, "save needs the whole model");
  ::mkdir(dir.c_str(), 0755);
  struct stat st;
  ABM_REQUIRE(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), dir,
              ": cannot create directory");
  LlamaConfig c = cfg_;
  c.torch_dtype = dtype == at::kBFloat16 ? "bfloat16" : "float32";
  NamedTensors w;
  for (auto& [n, t] : named_weights()) w.push_back({n, t.to(at::kCPU, dtype)});
  save_safetensors(dir + "/model.safetensors", w, {{"format", "pt"}});
  c.save(dir + "/config.json");
}

}  // namespace abm
