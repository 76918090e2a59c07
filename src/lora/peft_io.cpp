#include "lora/peft_io.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <type_traits>

#include "core/check.h"
#include "core/json_text.h"
#include "core/fs.h"
#include "lora/pissa.h"

namespace abm {
namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter_model.safetensors";
const char* kKeyPrefix = "base_model.model.";  // PeftModel -> LoraModel -> LlamaForCausalLM

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// lora_alpha is an int in PEFT's dataclass: write 16, not 16.0, when it is integral.
nlohmann::json number(double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 9e15) return int64_t(v);
  return v;
}

nlohmann::json peft_config_json(const LoraConfig& c, const std::string& base_model) {
  // Exactly the fields (and JSON types) of PEFT 0.7.1's LoraConfig; keys sort themselves.
  nlohmann::json j = nlohmann::json::object();
  j["alpha_pattern"] = nlohmann::json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = base_model;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = c.init == "gaussian" ? nlohmann::json("gaussian") : nlohmann::json(true);
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["loftq_config"] = nlohmann::json::object();
  j["lora_alpha"] = number(c.rslora ? c.alpha * std::sqrt(double(c.r)) : c.alpha);
  j["lora_dropout"] = c.dropout;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["rank_pattern"] = nlohmann::json::object();
  j["revision"] = nullptr;
  j["target_modules"] = c.target_modules();  // PEFT dumps a set (any order); ours: layer order
  j["task_type"] = "CAUSAL_LM";
  return j;
}

// "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight" -> module, layer, kind, 'B'
struct PeftKey {
  std::string module;
  int64_t layer = 0;
  std::string kind;
  char ab = 0;
};

bool parse_key(const std::string& key, PeftKey* k) {
  static const std::regex re(R"(base_model\.model\.(model\.layers\.(\d{1,9})\.)"
                             R"((self_attn|mlp)\.([a-z_]+))\.lora_([AB])\.weight)");
  std::smatch m;
  if (!std::regex_match(key, m, re)) return false;
  k->module = m[1];
  k->layer = std::stoll(m[2]);
  k->kind = m[4];
  k->ab = m[5].str()[0];
  auto& kinds = lora_module_kinds();
  if (std::find(kinds.begin(), kinds.end(), k->kind) == kinds.end()) return false;
  return lora_module_name(k->layer, k->kind) == k->module;  // self_attn vs mlp must agree
}

template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& origin) {
  ABM_REQUIRE(j.contains(key), origin, ": missing field \"", key, "\"");
  // nlohmann converts a float to an integer silently (1e300: undefined behaviour).
  ABM_REQUIRE(!std::is_integral_v<T> || !j[key].is_number_float(), origin, ": field \"", key,
              "\" must be a whole number, got ", j[key].dump());
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(cat(origin, ": field \"", key, "\" has the wrong type: ", j[key].dump()));
  }
}

// A field that must be absent, null or empty, because we do not implement it.
void require_unset(const nlohmann::json& j, const char* key, const std::string& origin,
                   const char* what) {
  if (!j.contains(key) || j[key].is_null() || (j[key].is_structured() && j[key].empty())) return;
  throw Error(cat(origin, ": ", key, " = ", j[key].dump(), " is not supported (", what, ")"));
}

}  // namespace

void export_peft(const AdapterSet& set, const std::string& base_model_path,
                 const std::string& out_dir) {
  ABM_REQUIRE(set.first_layer() == 0 && set.last_layer() == set.model_layers(),
              "PEFT export needs the adapters of all ", set.model_layers(),
              " layers; this set covers layers [", set.first_layer(), ", ", set.last_layer(),
              ") (gather the adapters first)");
  if (!set.offsets_base()) return export_peft(set.named_tensors(), set.config(), base_model_path, out_dir);
  // PiSSA / LoRA-GA trained against an offset base; PEFT gets the rank-2r adapter that
  // applies the same change to the original base (lora/pissa.h), at the same scale.
  LoraConfig c = set.config();
  c.alpha = c.scale() * double(2 * c.r);
  c.r *= 2;
  c.rslora = false;
  NamedTensors t;
  for (const AdaptedModule& m : set.modules()) {
    LoraWeights w = pissa_to_lora({m.lora->A(), m.lora->B()}, m.init);
    t.push_back({m.name + ".lora_A", w.A});
    t.push_back({m.name + ".lora_B", w.B});
  }
  export_peft(t, c, base_model_path, out_dir);
}

void export_peft(const NamedTensors& adapters, const LoraConfig& cfg,
                 const std::string& base_model_path, const std::string& out_dir) {
  make_dirs(out_dir);
  // Sorted by key: the data order safetensors' own writer uses for same-dtype tensors.
  std::map<std::string, at::Tensor> sorted;
  for (auto& [name, t] : adapters) sorted[kKeyPrefix + name + ".weight"] = t.detach().to(at::kFloat);
  NamedTensors tensors(sorted.begin(), sorted.end());
  save_safetensors(out_dir + "/" + kWeightsFile, tensors, {{"format", "pt"}});
  // json.dumps(indent=2, sort_keys=True) with ASCII escapes, no trailing newline: PEFT's bytes.
  write_text_atomic(out_dir + "/" + kConfigFile,
                    peft_config_json(cfg, base_model_path).dump(2, ' ', true));
}

PeftConfigFile read_peft_config(const std::string& dir) {
  const std::string path = dir + "/" + kConfigFile;
  ABM_REQUIRE(exists(dir), dir, ": no such adapter directory");
  ABM_REQUIRE(exists(path), path, ": missing (not a PEFT adapter directory)");
  nlohmann::json j = parse_json(read_small_file(path), path);
  ABM_REQUIRE(j.is_object(), path, ": expected a JSON object");
  auto type = field<std::string>(j, "peft_type", path);
  ABM_REQUIRE(type == "LORA", path, ": peft_type \"", type, "\" is not supported (only LORA)");
  PeftConfigFile out;
  LoraConfig& c = out.config;
  c.r = field<int64_t>(j, "r", path);
  c.alpha = field<double>(j, "lora_alpha", path);
  c.dropout = j.contains("lora_dropout") ? field<double>(j, "lora_dropout", path) : 0.0;
  c.rslora = j.contains("use_rslora") && field<bool>(j, "use_rslora", path);  // PEFT >= 0.8
  if (j.contains("bias")) {
    auto bias = field<std::string>(j, "bias", path);
    ABM_REQUIRE(bias == "none", path, ": bias \"", bias, "\" is not supported (only \"none\")");
  }
  ABM_REQUIRE(!(j.contains("fan_in_fan_out") && field<bool>(j, "fan_in_fan_out", path)), path,
              ": fan_in_fan_out = true is not supported (LLaMA projections are [out, in])");
  require_unset(j, "rank_pattern", path, "one r for all modules");
  require_unset(j, "alpha_pattern", path, "one alpha for all modules");
  require_unset(j, "layers_to_transform", path, "adapters on every layer");
  require_unset(j, "modules_to_save", path, "only LoRA tensors are loaded");
  if (j.contains("use_dora") && j["use_dora"].is_boolean())
    ABM_REQUIRE(!j["use_dora"].get<bool>(), path, ": use_dora = true is not supported");
  // init_lora_weights only records how training began: true -> kaiming, "gaussian"; false
  // (nn.Linear's default init) is read as kaiming. LoftQ also rewrote the base weights.
  if (j.contains("init_lora_weights") && j["init_lora_weights"].is_string()) {
    c.init = j["init_lora_weights"].get<std::string>();
    ABM_REQUIRE(c.init != "loftq", path, ": LoftQ adapters need LoftQ's quantized base "
                "weights, which are not supported");
    // Unconverted PiSSA/OLoRA adapters belong to the residual base their init wrote; PEFT's
    // conversion (path_initial_model_for_weight_conversion) makes one for the original base.
    ABM_REQUIRE(c.init.rfind("pissa", 0) != 0 && c.init != "olora", path, ": a \"", c.init,
                "\" adapter applies to its residual base model, not to the original; save it "
                "converted (PEFT: path_initial_model_for_weight_conversion)");
  }
  ABM_REQUIRE(j.contains("target_modules"), path, ": missing field \"target_modules\"");
  const nlohmann::json& t = j["target_modules"];
  if (t.is_string()) {
    auto s = t.get<std::string>();
    auto& kinds = lora_module_kinds();
    if (s == "all-linear" || std::count(kinds.begin(), kinds.end(), s))
      c.targets = {s};
    else
      out.target_regex = s;
  } else {
    c.targets = field<std::vector<std::string>>(j, "target_modules", path);
  }
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    out.base_model = j["base_model_name_or_path"].get<std::string>();
  try {
    // A regex is resolved later; validate the other fields with a placeholder target.
    if (!out.target_regex.empty()) c.targets = {"all-linear"};
    c.validate();
    c.targets = out.target_regex.empty() ? c.target_modules() : std::vector<std::string>{};
  } catch (const Error& e) {
    throw Error(cat(path, ": ", e.what()));
  }
  return out;
}

PeftAdapter import_peft(const std::string& dir, LlamaModel& model) {
  PeftConfigFile pc = read_peft_config(dir);
  LoraConfig c = pc.config;
  const std::string path = dir + "/" + kWeightsFile;
  if (!exists(path)) {
    ABM_REQUIRE(!exists(dir + "/adapter_model.bin"), path, ": missing; adapter_model.bin "
                "(pickle) is not read — re-save with safe_serialization=True");
    throw Error(cat(path, ": missing (the adapter weights)"));
  }
  SafetensorsFile f(path);
  const LlamaConfig& mc = model.config();
  // r against this model's shapes first: a clearer message than the tensor shapes give.
  try {
    if (pc.target_regex.empty()) c.validate_for(mc);
  } catch (const Error& e) {
    throw Error(cat(dir, "/", kConfigFile, ": ", e.what()));
  }
  std::regex pattern;
  if (!pc.target_regex.empty()) {
    try {
      pattern = std::regex(pc.target_regex);
    } catch (const std::regex_error&) {
      throw Error(cat(dir, "/", kConfigFile, ": target_modules \"", pc.target_regex,
                      "\" is neither a module name nor a regex we can read"));
    }
  }

  std::set<std::string> keys, kinds_seen;
  std::map<std::string, LoraWeights> weights;  // loaded layers only
  for (auto& key : f.names()) {
    PeftKey k;
    ABM_REQUIRE(parse_key(key, &k), path, ": unexpected tensor \"", key, "\" (expected ",
                kKeyPrefix, "model.layers.<i>.<self_attn|mlp>.<q|k|v|o|gate|up|down>_proj"
                ".lora_<A|B>.weight)");
    ABM_REQUIRE(k.layer < mc.layers, path, ": ", key, " is for layer ", k.layer,
                ", but the base model has ", mc.layers, " layers (a different base model?)");
    if (!pc.target_regex.empty()) {
      ABM_REQUIRE(std::regex_match(k.module, pattern), path, ": ", key,
                  " is not selected by target_modules \"", pc.target_regex, "\"");
    } else {
      ABM_REQUIRE(std::count(c.targets.begin(), c.targets.end(), k.kind), path, ": ", key,
                  " adapts ", k.kind, ", which target_modules does not list");
    }
    ModuleDims d = module_dims(mc, k.kind);
    std::vector<int64_t> want = k.ab == 'A' ? std::vector<int64_t>{c.r, d.in}
                                            : std::vector<int64_t>{d.out, c.r};
    const std::vector<int64_t>& got = f.entry(key).shape;
    ABM_REQUIRE(got == want, path, ": ", key, " has shape ", at::IntArrayRef(got),
                ", expected ", at::IntArrayRef(want), " (r=", c.r, "; ", k.kind,
                " of this base model is [", d.out, ", ", d.in, "]: a different base model?)");
    keys.insert(key);
    kinds_seen.insert(k.kind);
    if (k.layer >= model.first() && k.layer < model.last()) {
      LoraWeights& w = weights[k.module];
      (k.ab == 'A' ? w.A : w.B) = f.read(key, at::kFloat);
    }
  }
  ABM_REQUIRE(!keys.empty(), path, ": holds no LoRA tensors");
  if (!pc.target_regex.empty()) {
    c.targets.assign(kinds_seen.begin(), kinds_seen.end());
    c.targets = c.target_modules();  // canonical order
  }
  // Every targeted module of every layer must be there (PEFT would silently keep a fresh
  // init for a missing one: a broken export should not pass as an adapter).
  for (int64_t i = 0; i < mc.layers; ++i)
    for (auto& kind : c.targets)
      for (const char* ab : {".lora_A.weight", ".lora_B.weight"}) {
        std::string key = kKeyPrefix + lora_module_name(i, kind) + ab;
        ABM_REQUIRE(keys.count(key), path, ": missing tensor ", key, " (target_modules has ",
                    kind, ")");
      }
  return {c, AdapterSet::attach_weights(model, c, weights, path), pc.base_model};
}

void merge_to_model_dir(LlamaModel& model, AdapterSet& set, const std::string& out_dir,
                        at::ScalarType dtype, const std::string& tokenizer_dir) {
  ABM_REQUIRE(dtype == at::kFloat || dtype == at::kBFloat16,
              "merged model dtype must be fp32 or bf16");
  make_dirs(out_dir);
  set.merge();
  try {
    model.save(out_dir, dtype);
  } catch (...) {
    set.unmerge();
    throw;
  }
  set.unmerge();
  if (!tokenizer_dir.empty()) copy_tokenizer_files(tokenizer_dir, out_dir);
}

void merge_to_model_dir(const std::string& base_dir, const std::string& adapter_dir,
                        const std::string& out_dir, at::ScalarType dtype, at::Device device) {
  LoadOptions lo;
  lo.device = device;
  lo.dtype = at::kFloat;  // the merge rounds only once, when saving
  LlamaModel model = LlamaModel::load(base_dir, lo);
  PeftAdapter a = import_peft(adapter_dir, model);
  merge_to_model_dir(model, a.adapters, out_dir, dtype, base_dir);
}

}  // namespace abm
