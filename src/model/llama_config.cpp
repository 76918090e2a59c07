#include "model/llama_config.h"

#include <cmath>
#include <fstream>

#include "core/check.h"
#include "core/json_text.h"

namespace abm {
namespace {

constexpr int64_t kMaxConfigInt = int64_t(1) << 24;

int64_t req_int(const nlohmann::json& j, const char* key, const std::string& origin) {
  ABM_REQUIRE(j.contains(key), origin, ": missing field \"", key, "\"");
  ABM_REQUIRE(j[key].is_number_integer(), origin, ": field \"", key, "\" must be an integer");
  int64_t v = j[key].get<int64_t>();
  ABM_REQUIRE(v > 0, origin, ": field \"", key, "\" must be positive, got ", v);
  // Far above any real model; a larger value is a damaged file, not a request to
  // allocate terabytes.
  ABM_REQUIRE(v <= kMaxConfigInt, origin, ": field \"", key, "\" is ", v, ", above the ",
              kMaxConfigInt, " any real model has");
  return v;
}

template <typename T>
T opt(const nlohmann::json& j, const char* key, T fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(cat(origin, ": field \"", key, "\" has the wrong type: ", j[key].dump()));
  }
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  ABM_REQUIRE(j.is_object(), origin, ": expected a JSON object");
  if (j.contains("model_type") && j["model_type"].is_string()) {
    auto mt = j["model_type"].get<std::string>();
    ABM_REQUIRE(mt == "llama", origin, ": model_type \"", mt, "\" is not supported (only llama)");
  }
  LlamaConfig c;
  c.hidden = req_int(j, "hidden_size", origin);
  c.intermediate = req_int(j, "intermediate_size", origin);
  c.layers = req_int(j, "num_hidden_layers", origin);
  c.heads = req_int(j, "num_attention_heads", origin);
  c.vocab = req_int(j, "vocab_size", origin);
  c.kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                   ? req_int(j, "num_key_value_heads", origin)
                   : c.heads;
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = req_int(j, "head_dim", origin);
  } else {
    ABM_REQUIRE(c.hidden % c.heads == 0, origin, ": hidden_size ", c.hidden,
                " is not divisible by num_attention_heads ", c.heads);
    c.head_dim = c.hidden / c.heads;
  }
  ABM_REQUIRE(c.head_dim % 2 == 0, origin, ": head_dim ", c.head_dim, " must be even for RoPE");
  ABM_REQUIRE(c.heads % c.kv_heads == 0, origin, ": num_attention_heads ", c.heads,
              " is not a multiple of num_key_value_heads ", c.kv_heads);
  c.rms_eps = opt<double>(j, "rms_norm_eps", 1e-6, origin);
  c.rope_theta = opt<double>(j, "rope_theta", 10000.0, origin);
  ABM_REQUIRE(c.rms_eps > 0 && c.rms_eps < 1 && c.rope_theta > 0 && std::isfinite(c.rope_theta),
              origin, ": rms_norm_eps must be in (0, 1) and rope_theta positive and finite");
  c.max_positions = j.contains("max_position_embeddings") && !j["max_position_embeddings"].is_null()
                        ? req_int(j, "max_position_embeddings", origin)
                        : 2048;
  c.tie_embeddings = opt<bool>(j, "tie_word_embeddings", false, origin);
  c.torch_dtype = opt<std::string>(j, "torch_dtype", "float32", origin);
  c.bos_id = opt<int64_t>(j, "bos_token_id", 1, origin);
  c.eos_id = opt<int64_t>(j, "eos_token_id", 2, origin);
  ABM_REQUIRE(c.bos_id >= 0 && c.bos_id < c.vocab && c.eos_id >= 0 && c.eos_id < c.vocab, origin,
              ": bos_token_id ", c.bos_id, " and eos_token_id ", c.eos_id,
              " must be token ids below vocab_size ", c.vocab);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& rs = j["rope_scaling"];
    ABM_REQUIRE(rs.is_object(), origin, ": rope_scaling must be null or an object");
    std::string type = rs.contains("type") ? opt<std::string>(rs, "type", "", origin)
                                           : opt<std::string>(rs, "rope_type", "", origin);
    ABM_REQUIRE(type == "linear", origin, ": rope_scaling type \"", type,
                "\" is not supported (supported: null, linear)");
    c.rope_linear_factor = opt<double>(rs, "factor", 0.0, origin);
    ABM_REQUIRE(c.rope_linear_factor > 0, origin, ": rope_scaling.factor must be positive");
  }
  return c;
}

LlamaConfig LlamaConfig::load(const std::string& path) {
  return from_json(parse_json(read_small_file(path), path), path);
}

nlohmann::json LlamaConfig::to_json() const {
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", hidden},
      {"intermediate_size", intermediate},
      {"num_hidden_layers", layers},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads},
      {"vocab_size", vocab},
      {"rms_norm_eps", rms_eps},
      {"rope_theta", rope_theta},
      {"max_position_embeddings", max_positions},
      {"tie_word_embeddings", tie_embeddings},
      {"torch_dtype", torch_dtype},
      {"bos_token_id", bos_id},
      {"eos_token_id", eos_id},
      {"hidden_act", "silu"},
  };
  if (head_dim != hidden / heads) j["head_dim"] = head_dim;
  j["rope_scaling"] = rope_linear_factor == 1.0
                          ? nlohmann::json(nullptr)
                          : nlohmann::json{{"type", "linear"}, {"factor", rope_linear_factor}};
  return j;
}

void LlamaConfig::save(const std::string& path) const {
  std::ofstream out(path);
  ABM_REQUIRE(out, path, ": cannot write (", std::strerror(errno), ")");
  out << to_json().dump(2) << "\n";
  ABM_REQUIRE(out.good(), path, ": write failed");
}

int64_t LlamaConfig::layer_params() const {
  int64_t attn = hidden * q_dim() + 2 * hidden * kv_dim() + q_dim() * hidden;
  return attn + 3 * hidden * intermediate + 2 * hidden;
}

int64_t LlamaConfig::total_params() const {
  return layers * layer_params() + vocab * hidden * (tie_embeddings ? 1 : 2) + hidden;
}

}  // namespace abm
