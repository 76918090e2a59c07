#include "lora/lora_config.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace abm {
namespace {

std::string valid_list() {
  std::string s;
  for (auto& k : lora_module_kinds()) s += k + ", ";
  return s + "all-linear";
}

[[noreturn]] void unknown_module(const std::string& kind) {
  throw Error(cat("LoRA target module \"", kind, "\" does not exist in a LLaMA layer (valid: ",
                  valid_list(), ")"));
}

}  // namespace

const std::vector<std::string>& lora_module_kinds() {
  static const std::vector<std::string> kinds = [] {
    std::vector<std::string> k;
    for (const ProjInfo& p : projections()) k.push_back(p.kind);
    return k;
  }();
  return kinds;
}

ModuleDims module_dims(const LlamaConfig& c, const std::string& kind) {
  const std::optional<Proj> p = projection_of(kind);
  if (!p) unknown_module(kind);
  return projection_dims(c, *p);
}

double LoraConfig::scale() const {
  return rslora ? alpha / std::sqrt(double(r)) : alpha / double(r);
}

std::vector<std::string> LoraConfig::target_modules() const {
  ABM_REQUIRE(!targets.empty(), "LoRA targets: empty (valid: ", valid_list(), ")");
  std::vector<bool> want(lora_module_kinds().size(), false);
  for (auto& t : targets) {
    if (t == "all-linear") {
      want.assign(want.size(), true);
      continue;
    }
    auto& kinds = lora_module_kinds();
    auto it = std::find(kinds.begin(), kinds.end(), t);
    if (it == kinds.end()) unknown_module(t);
    want[it - kinds.begin()] = true;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < want.size(); ++i)
    if (want[i]) out.push_back(lora_module_kinds()[i]);
  return out;
}

void LoraConfig::validate() const {
  ABM_REQUIRE(r > 0, "LoRA r must be positive, got ", r);
  ABM_REQUIRE(dropout >= 0.0 && dropout < 1.0, "LoRA dropout must be in [0, 1), got ", dropout);
  ABM_REQUIRE(std::isfinite(alpha) && alpha > 0, "LoRA alpha must be positive, got ", alpha);
  ABM_REQUIRE(init == "kaiming" || init == "gaussian" || init == "pissa" || init == "lora-ga",
              "LoRA init \"", init, "\" is unknown (valid: kaiming, gaussian, pissa, lora-ga)");
  target_modules();
}

void LoraConfig::validate_for(const LlamaConfig& model) const {
  validate();
  for (auto& kind : target_modules()) {
    ModuleDims d = module_dims(model, kind);
    int64_t small = std::min(d.out, d.in);
    // A rank above min(out, in) adds parameters but no expressiveness: B A is capped there.
    ABM_REQUIRE(r <= small, "LoRA r=", r, " is larger than ", kind, "'s smaller dimension ",
                small, " (its weight is [", d.out, ", ", d.in, "]); use r <= ", small,
                " or drop ", kind, " from the targets");
    ABM_REQUIRE(init != "lora-ga" || 2 * r <= small, "--init lora-ga needs 2r <= ", small, " (",
                kind, " is [", d.out, ", ", d.in, "]; its B takes singular vectors r..2r)");
  }
}

nlohmann::json LoraConfig::to_json() const {
  return {{"r", r},           {"alpha", alpha}, {"dropout", dropout}, {"rslora", rslora},
          {"targets", target_modules()}, {"init", init}, {"seed", seed}};
}

LoraConfig LoraConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  LoraConfig c;
  try {
    // A float would convert to an integer silently (1e300: undefined behaviour).
    ABM_REQUIRE(j.at("r").is_number_integer() && j.at("seed").is_number_integer(), origin,
                ": bad LoRA config (r and seed must be whole numbers)");
    c.r = j.at("r").get<int64_t>();
    c.alpha = j.at("alpha").get<double>();
    c.dropout = j.at("dropout").get<double>();
    c.rslora = j.at("rslora").get<bool>();
    c.targets = j.at("targets").get<std::vector<std::string>>();
    c.init = j.at("init").get<std::string>();
    c.seed = j.at("seed").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(origin, ": bad LoRA config (", e.what(), ")"));
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(cat(origin, ": ", e.what()));
  }
  return c;
}

}  // namespace abm
