#include "lora/adapter_set.h"

#include "core/check.h"
#include "lora/init.h"
#include "lora/pissa.h"

namespace abm {
namespace {

Proj projection_kind(const std::string& kind) {
  const std::optional<Proj> p = projection_of(kind);
  ABM_CHECK(p, "unknown projection ", kind);
  return *p;
}

}  // namespace

std::string lora_module_name(int64_t layer, const std::string& kind) {
  return projection_module_name(layer, projection_kind(kind));
}

AdapterSet AdapterSet::attach(LlamaModel& model, const LoraConfig& cfg) {
  if (cfg.init != "pissa") return build(model, cfg, nullptr, "");
  LoraConfig plain = cfg;  // attach as usual, then start from the SVD (one offset mechanism)
  plain.init = "kaiming";
  AdapterSet s = build(model, plain, nullptr, "");
  std::map<std::string, LoraWeights> w0;
  for (const auto& m : s.modules_) w0[m.name] = pissa_factors(m.linear->weight, cfg.r, cfg.scale());
  s.restart_from(w0, "pissa");
  return s;
}

AdapterSet AdapterSet::attach_weights(LlamaModel& model, const LoraConfig& cfg,
                                      const std::map<std::string, LoraWeights>& weights,
                                      const std::string& origin) {
  return build(model, cfg, &weights, origin);
}

AdapterSet AdapterSet::build(LlamaModel& model, const LoraConfig& cfg,
                             const std::map<std::string, LoraWeights>* weights,
                             const std::string& origin) {
  cfg.validate_for(model.config());
  AdapterSet s;
  s.cfg_ = cfg;
  s.first_ = model.first();
  s.last_ = model.last();
  s.model_layers_ = model.config().layers;
  const std::vector<std::string> kinds = cfg.target_modules();
  // Check everything before touching the model, so a failure leaves it unadapted.
  for (int64_t i = s.first_; i < s.last_; ++i) {
    DecoderLayer& layer = model.layers()[i - s.first_];
    for (auto& kind : kinds) {
      AdaptedModule m;
      m.name = lora_module_name(i, kind);
      m.layer = i;
      m.kind = kind;
      m.proj = projection_kind(kind);
      m.linear = &projection(layer, m.proj);
      ABM_REQUIRE(!m.linear->adapter, m.name, " already has an adapter attached");
      ModuleDims d = module_dims(model.config(), kind);
      LoraWeights w;
      if (weights) {
        auto it = weights->find(m.name);
        ABM_REQUIRE(it != weights->end(), origin, ": no LoRA weights for ", m.name);
        w = it->second;
        ABM_REQUIRE(w.A.sizes() == at::IntArrayRef({cfg.r, d.in}) &&
                        w.B.sizes() == at::IntArrayRef({d.out, cfg.r}),
                    origin, ": ", m.name, " has lora_A ", w.A.sizes(), " and lora_B ",
                    w.B.sizes(), ", expected [", cfg.r, ", ", d.in, "] and [", d.out, ", ",
                    cfg.r, "] for this model with r=", cfg.r);
      } else {
        w = init_lora(cfg.init, cfg.seed, m.name, cfg.r, d.in, d.out);
      }
      m.lora = std::make_shared<LoraLinear>(w.A, w.B, cfg.scale(), cfg.dropout,
                                            module_seed(cfg.seed, m.name, "dropout"),
                                            m.linear->weight.device());
      s.modules_.push_back(std::move(m));
    }
  }
  if (weights) {
    for (auto& [name, w] : *weights)
      ABM_REQUIRE(s.find(name), origin, ": ", name, " is not a targeted module of layers [",
                  s.first_, ", ", s.last_, ")");
  }
  for (auto& m : s.modules_) m.linear->adapter = m.lora;
  s.attached_ = true;
  return s;
}

LoraLinear* AdapterSet::find(const std::string& module_name) const {
  for (auto& m : modules_)
    if (m.name == module_name) return m.lora.get();
  return nullptr;
}

std::vector<at::Tensor> AdapterSet::parameters() const {
  std::vector<at::Tensor> p;
  for (auto& m : modules_) {
    p.push_back(m.lora->A());
    p.push_back(m.lora->B());
  }
  return p;
}

std::vector<at::Tensor> AdapterSet::parameters(int64_t first, int64_t last) const {
  std::vector<at::Tensor> p;
  for (auto& m : modules_)
    if (m.layer >= first && m.layer < last) {
      p.push_back(m.lora->A());
      p.push_back(m.lora->B());
    }
  return p;
}

NamedTensors AdapterSet::named_tensors() const {
  NamedTensors t;
  for (auto& m : modules_) {
    t.push_back({m.name + ".lora_A", m.lora->A()});
    t.push_back({m.name + ".lora_B", m.lora->B()});
  }
  return t;
}

void AdapterSet::load_named_tensors(const std::map<std::string, at::Tensor>& t,
                                    const std::string& origin) {
  ABM_REQUIRE(!merged_, origin, ": cannot load LoRA weights while merged (unmerge first)");
  auto mine = named_tensors();
  for (auto& [name, dst] : mine) {
    auto it = t.find(name);
    ABM_REQUIRE(it != t.end(), origin, ": missing LoRA tensor ", name);
    ABM_REQUIRE(it->second.sizes() == dst.sizes(), origin, ": ", name, " has shape ",
                it->second.sizes(), ", expected ", dst.sizes());
  }
  ABM_REQUIRE(t.size() == mine.size(), origin, ": ", t.size(), " LoRA tensors, expected ",
              mine.size());
  at::NoGradGuard ng;
  for (auto& [name, dst] : mine) dst.copy_(t.at(name));
}

int64_t AdapterSet::num_params() const {
  int64_t n = 0;
  for (auto& m : modules_) n += m.lora->A().numel() + m.lora->B().numel();
  return n;
}

void AdapterSet::set_enabled(bool on) {
  ABM_REQUIRE(!(merged_ && !on), "LoRA adapters are merged into the weights; unmerge before "
              "switching them off (teacher mode)");
  for (auto& m : modules_) m.lora->set_enabled(on);
}

void AdapterSet::set_train(bool on) {
  for (auto& m : modules_) m.lora->set_train(on);
}

void AdapterSet::reseed_dropout(uint64_t seed) {
  for (auto& m : modules_) m.lora->reseed_dropout(module_seed(seed, m.name, "dropout"));
}

void AdapterSet::restart_from(const std::map<std::string, LoraWeights>& w0,
                              const std::string& init) {
  ABM_CHECK(!merged_ && attached_ && w0.size() == modules_.size(), "restart_from: ", w0.size(),
            " factors for ", modules_.size(), " modules");
  cfg_.init = init;
  at::NoGradGuard ng;
  for (auto& m : modules_) {
    const LoraWeights& w = w0.at(m.name);
    ABM_CHECK(w.A.sizes() == m.lora->A().sizes() && w.B.sizes() == m.lora->B().sizes(),
              m.name, ": factors ", w.A.sizes(), " ", w.B.sizes());
    m.init = {w.A.to(at::kFloat, false, true), w.B.to(at::kFloat, false, true)};
    m.lora->A().copy_(w.A);
    m.lora->B().copy_(w.B);
    m.linear->weight.copy_(pissa_residual(m.linear->weight, m.init, cfg_.scale()));
  }
}

void AdapterSet::merge() {
  ABM_REQUIRE(!merged_, "LoRA adapters are already merged");
  ABM_REQUIRE(attached_, "LoRA adapters are detached");
  for (auto& m : modules_) m.lora->merge(m.linear->weight);
  merged_ = true;
}

void AdapterSet::unmerge() {
  ABM_REQUIRE(merged_, "LoRA adapters are not merged");
  for (auto& m : modules_) m.lora->unmerge(m.linear->weight);
  merged_ = false;
}

void AdapterSet::detach() {
  if (!attached_) return;
  if (merged_) unmerge();
  for (auto& m : modules_)
    if (m.linear->adapter == m.lora) m.linear->adapter.reset();
  attached_ = false;
}

}  // namespace abm
