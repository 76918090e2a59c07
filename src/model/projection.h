// The seven projections of a LLaMA decoder layer, named once: their order (the order of
// HF's state dict and of every per-projection array in this project), their HF module
// names and shapes. Everything that walks a layer's projections (LoRA targets, the
// hand-written backward, ABM, recompute, loading) goes through this list.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "model/llama_layer.h"

namespace abm {

enum class Proj { q, k, v, o, gate, up, down };
inline constexpr int kProjCount = 7;

struct ProjInfo {
  Proj id;
  const char* kind;   // "q_proj": PEFT's target_modules name
  const char* block;  // "self_attn" or "mlp": the HF submodule that holds it
};

// In HF state-dict order: q, k, v, o, gate, up, down.
const std::array<ProjInfo, kProjCount>& projections();
const ProjInfo& projection_info(Proj p);
// "q_proj" -> Proj::q; nullopt for anything else.
std::optional<Proj> projection_of(std::string_view kind);

// [out, in] of projection p under config c.
struct ModuleDims {
  int64_t out = 0, in = 0;
};
ModuleDims projection_dims(const LlamaConfig& c, Proj p);

// "model.layers.3.self_attn.q_proj" (no ".weight").
std::string projection_module_name(int64_t layer, Proj p);

Linear& projection(DecoderLayer& l, Proj p);
const Linear& projection(const DecoderLayer& l, Proj p);

// f(const ProjInfo&, Linear&) for each projection of l, in order.
template <class Layer, class F>
void for_each_projection(Layer& l, F&& f) {
  for (const ProjInfo& p : projections()) f(p, projection(l, p.id));
}

}  // namespace abm
