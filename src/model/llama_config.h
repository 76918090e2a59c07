// LlamaConfig: the geometry and numerics of a LLaMA-2-family model, read from a Hugging
// Face config.json and validated (docs/design.md §8).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace abm {

struct LlamaConfig {
  int64_t hidden = 0;        // hidden_size
  int64_t intermediate = 0;  // intermediate_size
  int64_t layers = 0;        // num_hidden_layers
  int64_t heads = 0;         // num_attention_heads
  int64_t kv_heads = 0;      // num_key_value_heads (GQA); defaults to heads
  int64_t head_dim = 0;      // defaults to hidden / heads
  int64_t vocab = 0;
  double rms_eps = 1e-6;
  double rope_theta = 10000.0;
  double rope_linear_factor = 1.0;  // rope_scaling {"type":"linear","factor":f}; 1 = none
  int64_t max_positions = 2048;
  bool tie_embeddings = false;
  std::string torch_dtype = "float32";
  int64_t bos_id = 1, eos_id = 2;

  int64_t q_dim() const { return heads * head_dim; }
  int64_t kv_dim() const { return kv_heads * head_dim; }

  // Validates; errors name `origin` (the file) and the offending field.
  static LlamaConfig from_json(const nlohmann::json& j, const std::string& origin);
  static LlamaConfig load(const std::string& path);  // path to config.json
  nlohmann::json to_json() const;
  void save(const std::string& path) const;

  // Parameters of one decoder layer / of the whole model.
  int64_t layer_params() const;
  int64_t total_params() const;
};

}  // namespace abm
