// AdapterSet: the LoRA adapters of one LlamaModel (its loaded layer range), attached to
// the targeted projections, with PEFT-style module names ("model.layers.3.self_attn.q_proj").
// Order everywhere is (layer, then q k v o gate up down) — the HF/PEFT state_dict order —
// so parameters() is identical on every rank that holds the same layers.
//
// Lifetime: the set points into the model's layers. The model must outlive the set and not
// be copied or have its layers vector resized while attached; detach() hands the
// projections back (unmerging first). Destroying the set without detach() leaves the
// adapters attached (Linear::adapter owns them), which is safe but rarely intended.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lora/init.h"
#include "lora/lora_config.h"
#include "lora/lora_linear.h"
#include "model/llama_model.h"

namespace abm {

struct AdaptedModule {
  std::string name;  // "model.layers.3.self_attn.q_proj"
  int64_t layer = 0; // absolute layer index
  std::string kind;  // "q_proj"
  Proj proj = Proj::q;
  Linear* linear = nullptr;             // the model's projection
  std::shared_ptr<LoraLinear> lora;     // also held by linear->adapter while attached
  LoraWeights init;                     // PiSSA: the starting A₀, B₀ (fp32); else empty
};

class AdapterSet {
 public:
  // Fresh adapters (init per (cfg.seed, module name)) on the targeted projections of the
  // model's loaded layers. Validates cfg against the model's geometry.
  // cfg.init "pissa" (lora/pissa.h): A, B from each weight's SVD, and the model's weight
  // becomes the residual W − s·B₀A₀ — it stays so after detach(); the set keeps A₀, B₀
  // for export (PEFT applies the result to the original base).
  static AdapterSet attach(LlamaModel& model, const LoraConfig& cfg);
  // Adapters with given weights: `weights` maps module name -> {A [r,in], B [out,r]} and
  // must hold exactly the targeted modules of the loaded layers (import, checkpoints).
  static AdapterSet attach_weights(LlamaModel& model, const LoraConfig& cfg,
                                   const std::map<std::string, LoraWeights>& weights,
                                   const std::string& origin);

  AdapterSet(AdapterSet&&) = default;
  AdapterSet& operator=(AdapterSet&&) = default;
  AdapterSet(const AdapterSet&) = delete;
  AdapterSet& operator=(const AdapterSet&) = delete;

  const LoraConfig& config() const { return cfg_; }
  const std::vector<AdaptedModule>& modules() const { return modules_; }
  LoraLinear* find(const std::string& module_name) const;  // null if absent
  int64_t first_layer() const { return first_; }  // the model range the set covers
  int64_t last_layer() const { return last_; }
  int64_t model_layers() const { return model_layers_; }

  // A0, B0, A1, B1, ... in module order (the trainer flattens their grads in this order).
  std::vector<at::Tensor> parameters() const;
  // The same restricted to modules of layers [first, last) (one pipeline stage's share).
  std::vector<at::Tensor> parameters(int64_t first, int64_t last) const;
  // "<module>.lora_A" -> A [r,in], "<module>.lora_B" -> B [out,r], same order.
  NamedTensors named_tensors() const;
  // Copies values into the existing A/B (shape-checked, names as named_tensors(); every
  // one must be present). Keeps the tensors' identity, so optimizer references stay valid.
  void load_named_tensors(const std::map<std::string, at::Tensor>& t, const std::string& origin);
  int64_t num_params() const;

  void set_enabled(bool on);  // false = teacher mode (base model); refused while merged
  void set_train(bool on);    // dropout on/off
  // Every module's dropout stream := module_seed(seed, name, "dropout").
  void reseed_dropout(uint64_t seed);

  // An init computed after attaching (PiSSA, LoRA-GA — the latter needs the B = 0 model's
  // gradient; svd_init shares the factors over ranks): every
  // module's A, B := w0 (module name -> factors, all modules), recorded as the start as
  // PiSSA's are, and each weight becomes W − s·B₀A₀; config().init := init.
  void restart_from(const std::map<std::string, LoraWeights>& w0, const std::string& init);
  // Whether the base weights carry an init's offset (PiSSA, LoRA-GA): then modules()[i].init
  // holds A₀, B₀ and a PEFT export adds −B₀A₀ (rank 2r) to apply to the original base.
  bool offsets_base() const { return !modules_.empty() && modules_.front().init.A.defined(); }

  void merge();    // W += s B A for every module (do not update A/B while merged)
  void unmerge();
  bool merged() const { return merged_; }

  void detach();   // unmerges if needed and clears the projections' adapters
  bool attached() const { return attached_; }

 private:
  AdapterSet() = default;
  static AdapterSet build(LlamaModel& model, const LoraConfig& cfg,
                          const std::map<std::string, LoraWeights>* weights,
                          const std::string& origin);
  LoraConfig cfg_;
  std::vector<AdaptedModule> modules_;
  int64_t first_ = 0, last_ = 0, model_layers_ = 0;
  bool merged_ = false;
  bool attached_ = false;
};

// "model.layers.<layer>.self_attn.<kind>" or ".mlp.<kind>".
std::string lora_module_name(int64_t layer, const std::string& kind);

}  // namespace abm
