// LoraConfig: what a LoRA adapter is (rank, scaling, dropout, which projections, init),
// validated on its own and against a model's geometry (docs/design.md §1). Module names are PEFT's
// (q_proj ... down_proj), so a config reads the same here, in PEFT and in the CLI.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/llama_config.h"
#include "model/projection.h"

namespace abm {

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0.0;    // on the adapter input, train mode only
  bool rslora = false;     // scale alpha/sqrt(r) instead of alpha/r
  // PEFT module names, or "all-linear" (= all seven). PEFT's default for LLaMA.
  std::vector<std::string> targets = {"q_proj", "v_proj"};
  std::string init = "kaiming";  // "kaiming" (PEFT init_lora_weights=True) | "gaussian" | "pissa" | "lora-ga"
  uint64_t seed = 0;             // init and dropout streams derive from (seed, module name)

  double scale() const;  // alpha / r, or alpha / sqrt(r) with rslora

  // `targets` expanded ("all-linear") and deduplicated, in layer order
  // (q, k, v, o, gate, up, down). Throws like validate() on an unknown name.
  std::vector<std::string> target_modules() const;

  // Alone: r > 0, dropout in [0, 1), alpha finite and > 0, known targets and init.
  void validate() const;
  // And against a model: r must not exceed any targeted module's smaller dimension.
  void validate_for(const LlamaConfig& model) const;

  // Our own (checkpoint) form; PEFT's adapter_config.json lives in peft_io.h.
  nlohmann::json to_json() const;
  static LoraConfig from_json(const nlohmann::json& j, const std::string& origin);
};

// The seven projection kinds, in layer order.
const std::vector<std::string>& lora_module_kinds();
// Throws abm::Error naming `kind` and the valid kinds when it is not one of them.
ModuleDims module_dims(const LlamaConfig& c, const std::string& kind);

}  // namespace abm
