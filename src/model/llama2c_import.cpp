#include "model/llama2c_import.h"

#include <cstdio>
#include <fstream>
#include <map>

#include "core/check.h"

namespace abm {
namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42"

// Sequential reader over the file with bounds checks that name the file.
struct BinReader {
  std::ifstream in;
  std::string path;
  int64_t size = 0;

  explicit BinReader(const std::string& p) : in(p, std::ios::binary), path(p) {
    ABM_REQUIRE(in, p, ": cannot open (", std::strerror(errno), ")");
    in.seekg(0, std::ios::end);
    size = in.tellg();
    in.seekg(0);
  }
  void bytes(void* dst, int64_t n, const std::string& what) {
    int64_t at = in.tellg();
    ABM_REQUIRE(at + n <= size, path, ": truncated llama2.c checkpoint: ", what, " needs ",
                n, " bytes at offset ", at, " but the file has ", size);
    in.read(static_cast<char*>(dst), n);
  }
  at::Tensor f32(std::vector<int64_t> shape, const std::string& what) {
    at::Tensor t = at::empty(shape, at::kFloat);
    bytes(t.data_ptr(), t.numel() * 4, what);
    return t;
  }
  // Q8_0: int8 values then one fp32 scale per group of `group` values.
  at::Tensor q80(std::vector<int64_t> shape, int64_t group, const std::string& what) {
    at::Tensor q = at::empty(shape, at::kChar);
    bytes(q.data_ptr(), q.numel(), what);
    ABM_REQUIRE(q.numel() % group == 0, path, ": ", what, " is not a multiple of group ", group);
    at::Tensor s = at::empty({q.numel() / group}, at::kFloat);
    bytes(s.data_ptr(), s.numel() * 4, what + " scales");
    return (q.to(at::kFloat).view({-1, group}) * s.unsqueeze(1)).view(shape);
  }
  void skip(int64_t n, const std::string& what) {
    int64_t at = in.tellg();
    ABM_REQUIRE(at + n <= size, path, ": truncated llama2.c checkpoint at ", what);
    in.seekg(at + n);
  }
};

std::string L(int64_t i, const char* part) { return cat("model.layers.", i, ".", part, ".weight"); }

}  // namespace

at::Tensor permute_meta_to_hf(const at::Tensor& w, int64_t heads) {
  int64_t d = w.size(0), in = w.size(1);
  return w.view({heads, d / heads / 2, 2, in}).transpose(1, 2).reshape({d, in});
}

LlamaModel import_llama2c(const std::string& path, Llama2cInfo* info) {
  BinReader r(path);
  uint32_t magic = 0;
  r.bytes(&magic, 4, "header");
  Llama2cInfo meta;
  int64_t group = 0;
  if (magic == kMagic) {
    int32_t version = 0;
    r.bytes(&version, 4, "version");
    ABM_REQUIRE(version == 1 || version == 2, path, ": llama2.c format version ", version,
                " is not supported (supported: legacy, 1, 2)");
    meta.version = version;
  } else {
    r.in.seekg(0);  // legacy: the header starts with dim
  }
  int32_t p[7];
  r.bytes(p, sizeof(p), "header");
  const int64_t dim = p[0], hidden = p[1], layers = p[2], heads = p[3], kv_heads = p[4];
  int64_t vocab = p[5];
  const int64_t seq_len = p[6];
  if (meta.version == 0) {
    meta.shared_classifier = vocab > 0;  // legacy marks an untied head with a negative vocab
    vocab = std::abs(vocab);
  } else {
    uint8_t shared = 0;
    r.bytes(&shared, 1, "shared_classifier");
    meta.shared_classifier = shared != 0;
    if (meta.version == 2) {
      int32_t g = 0;
      r.bytes(&g, 4, "group_size");
      group = g;
      ABM_REQUIRE(group > 0, path, ": bad Q8_0 group size ", group);
    }
    r.in.seekg(256);  // versioned headers are padded to 256 bytes
  }
  ABM_REQUIRE(dim > 0 && hidden > 0 && layers > 0 && heads > 0 && kv_heads > 0 && vocab > 0 &&
                  seq_len > 0 && dim % heads == 0 && heads % kv_heads == 0,
              path, ": implausible llama2.c header (dim ", dim, ", hidden ", hidden, ", layers ",
              layers, ", heads ", heads, ", kv_heads ", kv_heads, ", vocab ", vocab, ", seq_len ",
              seq_len, ")");

  LlamaConfig c;
  c.hidden = dim;
  c.intermediate = hidden;
  c.layers = layers;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab = vocab;
  c.rms_eps = 1e-5;  // llama2.c's RMSNorm epsilon
  c.rope_theta = 10000.0;
  c.max_positions = seq_len;
  c.tie_embeddings = meta.shared_classifier;
  const int64_t kv = c.kv_dim();

  // Per-layer stacks in file order, named by their Meta roles.
  std::map<std::string, at::Tensor> t;
  auto stack = [&](const char* what, std::vector<int64_t> shape, bool quant) {
    std::vector<int64_t> full = {layers};
    full.insert(full.end(), shape.begin(), shape.end());
    return quant ? r.q80(full, group, what) : r.f32(full, what);
  };
  at::Tensor emb, att_norm, ffn_norm, final_norm, wq, wk, wv, wo, w1, w2, w3, wcls;
  if (meta.version == 0) {
    emb = r.f32({vocab, dim}, "token_embedding");
    att_norm = stack("rms_att", {dim}, false);
    wq = stack("wq", {dim, dim}, false);
    wk = stack("wk", {kv, dim}, false);
    wv = stack("wv", {kv, dim}, false);
    wo = stack("wo", {dim, dim}, false);
    ffn_norm = stack("rms_ffn", {dim}, false);
    w1 = stack("w1", {hidden, dim}, false);
    w2 = stack("w2", {dim, hidden}, false);
    w3 = stack("w3", {hidden, dim}, false);
    final_norm = r.f32({dim}, "rms_final");
    r.skip(2 * seq_len * (c.head_dim / 2) * 4, "freq_cis");  // RoPE tables, recomputed
    if (!meta.shared_classifier) wcls = r.f32({vocab, dim}, "wcls");
  } else {
    // v1/v2: all norms first (fp32 in both), then the matrices (fp32 or Q8_0).
    bool q = meta.version == 2;
    att_norm = stack("attention_norm", {dim}, false);
    ffn_norm = stack("ffn_norm", {dim}, false);
    final_norm = r.f32({dim}, "norm");
    emb = q ? r.q80({vocab, dim}, group, "tok_embeddings") : r.f32({vocab, dim}, "tok_embeddings");
    wq = stack("wq", {dim, dim}, q);
    wk = stack("wk", {kv, dim}, q);
    wv = stack("wv", {kv, dim}, q);
    wo = stack("wo", {dim, dim}, q);
    w1 = stack("w1", {hidden, dim}, q);
    w2 = stack("w2", {dim, hidden}, q);
    w3 = stack("w3", {hidden, dim}, q);
    if (!meta.shared_classifier)
      wcls = q ? r.q80({vocab, dim}, group, "output") : r.f32({vocab, dim}, "output");
  }
  int64_t end = r.in.tellg();
  ABM_REQUIRE(end == r.size, path, ": ", r.size - end, " unexpected trailing bytes after the ",
              "last tensor (wrong format version or geometry?)");
  t["model.embed_tokens.weight"] = emb;
  for (int64_t i = 0; i < layers; ++i) {
    t[L(i, "input_layernorm")] = att_norm[i];
    t[L(i, "self_attn.q_proj")] = permute_meta_to_hf(wq[i], heads);
    t[L(i, "self_attn.k_proj")] = permute_meta_to_hf(wk[i], kv_heads);
    t[L(i, "self_attn.v_proj")] = wv[i];
    t[L(i, "self_attn.o_proj")] = wo[i];
    t[L(i, "post_attention_layernorm")] = ffn_norm[i];
    t[L(i, "mlp.gate_proj")] = w1[i];
    t[L(i, "mlp.down_proj")] = w2[i];
    t[L(i, "mlp.up_proj")] = w3[i];
  }
  t["model.norm.weight"] = final_norm;
  if (!meta.shared_classifier) t["lm_head.weight"] = wcls;
  if (info) *info = meta;
  return LlamaModel::from_tensors(c, t, at::kFloat);
}

}  // namespace abm
