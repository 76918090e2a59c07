// model/llama_config.h and lora/lora_config.h: the committed default config reads to the
// right geometry; hostile config.json files are one abm::Error naming the file and field.
#include <cmath>

#include "core/json_text.h"
#include "lora/lora_config.h"
#include "model/llama_config.h"
#include "model/safetensors.h"
#include "san_util.h"

namespace abm {
namespace {

using san::TempDir;
using san::write_file;

const std::string kDefault = std::string(ABM_REPO_DIR) + "/models/default";

nlohmann::json default_json() { return parse_json(read_small_file(kDefault + "/config.json"), "x"); }

TEST(LlamaConfig, DefaultModel) {
  LlamaConfig c = LlamaConfig::load(kDefault + "/config.json");
  EXPECT_EQ(c.hidden, 256);
  EXPECT_EQ(c.intermediate, 688);
  EXPECT_EQ(c.layers, 6);
  EXPECT_EQ(c.heads, 8);
  EXPECT_EQ(c.kv_heads, 4);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.vocab, 2048);
  EXPECT_EQ(c.max_positions, 256);
  EXPECT_DOUBLE_EQ(c.rms_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rope_linear_factor, 1.0);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  // The committed weights agree with it: header parsed, shapes as the config says.
  SafetensorsFile f(kDefault + "/model.safetensors");
  EXPECT_EQ(f.entry("model.embed_tokens.weight").shape, (std::vector<int64_t>{2048, 256}));
  EXPECT_EQ(f.entry("model.layers.5.self_attn.k_proj.weight").shape,
            (std::vector<int64_t>{c.kv_dim(), c.hidden}));
  int64_t params = 0;
  for (auto& n : f.names()) {
    int64_t k = 1;
    for (int64_t d : f.entry(n).shape) k *= d;
    params += k;
  }
  EXPECT_EQ(params, c.total_params());
}

TEST(LlamaConfig, RoundTrip) {
  LlamaConfig c = LlamaConfig::from_json(default_json(), "cfg");
  c.rope_linear_factor = 2.0;
  c.head_dim = 64;
  LlamaConfig d = LlamaConfig::from_json(c.to_json(), "back");
  EXPECT_EQ(d.head_dim, 64);
  EXPECT_DOUBLE_EQ(d.rope_linear_factor, 2.0);
  EXPECT_EQ(d.kv_heads, c.kv_heads);
}

TEST(LlamaConfig, DeepFieldIsAnErrorNamingTheFile) {
  TempDir t;
  std::string text = read_small_file(kDefault + "/config.json");
  auto at = text.find("1e-05");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 5, san::nested(100000));
  write_file(t / "config.json", text);
  EXPECT_ABM_ERROR(LlamaConfig::load(t / "config.json"), t / "config.json", "nested deeper");
}

TEST(LlamaConfig, BadFieldsNameFileAndField) {
  auto with = [](const char* key, nlohmann::json v) {
    nlohmann::json j = default_json();
    if (v.is_discarded()) j.erase(key);
    else j[key] = v;
    return j;
  };
  const nlohmann::json gone = nlohmann::json(nlohmann::json::value_t::discarded);
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("hidden_size", gone), "c.json"), "c.json",
                   "missing field \"hidden_size\"");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("hidden_size", "256"), "c.json"), "c.json",
                   "\"hidden_size\" must be an integer");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("num_hidden_layers", -5), "c.json"),
                   "\"num_hidden_layers\" must be positive");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("max_position_embeddings", int64_t(1) << 40), "c.json"),
                   "c.json", "max_position_embeddings");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("max_position_embeddings", -5), "c.json"),
                   "c.json", "max_position_embeddings");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("vocab_size", 18446744073709551615ull), "c.json"),
                   "c.json", "vocab_size");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("num_attention_heads", 7), "c.json"), "c.json",
                   "not divisible");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("num_key_value_heads", 3), "c.json"), "c.json",
                   "num_key_value_heads");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("rms_norm_eps", "tiny"), "c.json"), "c.json",
                   "\"rms_norm_eps\" has the wrong type");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("rms_norm_eps", 0.0), "c.json"), "rms_norm_eps");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("eos_token_id", 4096), "c.json"), "eos_token_id");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("model_type", "mistral"), "c.json"), "mistral");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("rope_scaling", {{"type", "yarn"}, {"factor", 2}}), "c.json"),
                   "rope_scaling type \"yarn\"");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(with("rope_scaling", {{"type", "linear"}, {"factor", -1}}), "c.json"),
                   "rope_scaling.factor must be positive");
  EXPECT_ABM_ERROR(LlamaConfig::from_json(nlohmann::json::array(), "c.json"), "c.json",
                   "expected a JSON object");
}

TEST(LlamaConfig, NotARegularFile) {
  TempDir t;
  EXPECT_ABM_ERROR(LlamaConfig::load(t.path), t.path, "not a regular file");
  EXPECT_ABM_ERROR(LlamaConfig::load("/dev/zero"), "/dev/zero", "not a regular file");
  EXPECT_ABM_ERROR(LlamaConfig::load(t / "config.json"), t / "config.json", "cannot open");
  write_file(t / "config.json", "{\"hidden_size\": 256,");
  EXPECT_ABM_ERROR(LlamaConfig::load(t / "config.json"), t / "config.json", "not valid JSON");
}

nlohmann::json lora_json() {
  return {{"r", 8},        {"alpha", 16.0}, {"dropout", 0.05},     {"rslora", false},
          {"targets", {"q_proj", "v_proj"}}, {"init", "kaiming"}, {"seed", 3}};
}

TEST(LoraConfig, FromJson) {
  LoraConfig c = LoraConfig::from_json(lora_json(), "lora_config");
  EXPECT_EQ(c.r, 8);
  EXPECT_DOUBLE_EQ(c.alpha, 16.0);
  EXPECT_DOUBLE_EQ(c.dropout, 0.05);
  EXPECT_EQ(c.target_modules(), (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.seed, 3u);
  LoraConfig back = LoraConfig::from_json(c.to_json(), "back");
  EXPECT_EQ(back.r, c.r);
  EXPECT_EQ(back.target_modules(), c.target_modules());
}

TEST(LoraConfig, BadFieldsNameTheOrigin) {
  auto with = [](const char* key, nlohmann::json v) {
    nlohmann::json j = lora_json();
    j[key] = v;
    return j;
  };
  EXPECT_ABM_ERROR(LoraConfig::from_json(with("r", "8"), "lc"), "lc: bad LoRA config");
  EXPECT_ABM_ERROR(LoraConfig::from_json(with("r", 0), "lc"), "lc:");
  EXPECT_ABM_ERROR(LoraConfig::from_json(with("dropout", 1.5), "lc"), "lc:");
  EXPECT_ABM_ERROR(LoraConfig::from_json(with("targets", {"nope"}), "lc"), "lc:", "nope");
  EXPECT_ABM_ERROR(LoraConfig::from_json(with("targets", nlohmann::json::array()), "lc"), "lc:");
  EXPECT_ABM_ERROR(LoraConfig::from_json(with("init", "orthogonal"), "lc"), "lc:");
  EXPECT_ABM_ERROR(LoraConfig::from_json(nlohmann::json::object(), "lc"), "lc: bad LoRA config");
}

}  // namespace
}  // namespace abm
