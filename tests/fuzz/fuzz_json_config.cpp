// libFuzzer driver: the JSON documents the program reads whole — core/json_text.h's
// parse_json (depth limit, then nlohmann), a LLaMA config.json (LlamaConfig::from_json,
// then the parameter counts that init-model and the stage planner compute from it) and
// the LoRA config a checkpoint carries (LoraConfig::from_json). Valid configs must also
// survive to_json -> from_json unchanged. Bad input must end in abm::Error.
#include <cstdlib>
#include <string_view>

#include "core/json_text.h"
#include "lora/lora_config.h"
#include "model/llama_config.h"

namespace {

void same_or_abort(const abm::LlamaConfig& a, const abm::LlamaConfig& b) {
  if (a.hidden != b.hidden || a.intermediate != b.intermediate || a.layers != b.layers ||
      a.heads != b.heads || a.kv_heads != b.kv_heads || a.head_dim != b.head_dim ||
      a.vocab != b.vocab || a.rms_eps != b.rms_eps || a.rope_theta != b.rope_theta ||
      a.rope_linear_factor != b.rope_linear_factor || a.max_positions != b.max_positions ||
      a.tie_embeddings != b.tie_embeddings || a.torch_dtype != b.torch_dtype ||
      a.bos_id != b.bos_id || a.eos_id != b.eos_id)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  try {
    j = abm::parse_json(text, "config.json");
    (void)j.dump();  // the depth limit must make every recursive walk safe
  } catch (const std::exception&) {
    return 0;
  }
  try {
    abm::LlamaConfig c = abm::LlamaConfig::from_json(j, "config.json");
    (void)c.layer_params();
    (void)c.total_params();
    same_or_abort(c, abm::LlamaConfig::from_json(c.to_json(), "round trip"));
  } catch (const std::exception&) {
  }
  try {
    abm::LoraConfig l = abm::LoraConfig::from_json(j, "lora_config");
    abm::LoraConfig back = abm::LoraConfig::from_json(l.to_json(), "round trip");
    if (back.r != l.r || back.alpha != l.alpha || back.target_modules() != l.target_modules())
      std::abort();
  } catch (const std::exception&) {
  }
  return 0;
}
