#include "model/projection.h"

#include "core/check.h"

namespace abm {

const std::array<ProjInfo, kProjCount>& projections() {
  static const std::array<ProjInfo, kProjCount> all = {{
      {Proj::q, "q_proj", "self_attn"},
      {Proj::k, "k_proj", "self_attn"},
      {Proj::v, "v_proj", "self_attn"},
      {Proj::o, "o_proj", "self_attn"},
      {Proj::gate, "gate_proj", "mlp"},
      {Proj::up, "up_proj", "mlp"},
      {Proj::down, "down_proj", "mlp"},
  }};
  return all;
}

const ProjInfo& projection_info(Proj p) { return projections()[static_cast<size_t>(p)]; }

std::optional<Proj> projection_of(std::string_view kind) {
  for (const ProjInfo& p : projections())
    if (kind == p.kind) return p.id;
  return std::nullopt;
}

ModuleDims projection_dims(const LlamaConfig& c, Proj p) {
  switch (p) {
    case Proj::q: return {c.q_dim(), c.hidden};
    case Proj::k:
    case Proj::v: return {c.kv_dim(), c.hidden};
    case Proj::o: return {c.hidden, c.q_dim()};
    case Proj::gate:
    case Proj::up: return {c.intermediate, c.hidden};
    case Proj::down: return {c.hidden, c.intermediate};
  }
  ABM_CHECK(false, "projection_dims: bad projection ", static_cast<int>(p));
  return {};
}

std::string projection_module_name(int64_t layer, Proj p) {
  const ProjInfo& i = projection_info(p);
  return cat("model.layers.", layer, ".", i.block, ".", i.kind);
}

Linear& projection(DecoderLayer& l, Proj p) {
  switch (p) {
    case Proj::q: return l.q;
    case Proj::k: return l.k;
    case Proj::v: return l.v;
    case Proj::o: return l.o;
    case Proj::gate: return l.gate;
    case Proj::up: return l.up;
    case Proj::down: return l.down;
  }
  ABM_CHECK(false, "projection: bad projection ", static_cast<int>(p));
  return l.q;
}

const Linear& projection(const DecoderLayer& l, Proj p) {
  return projection(const_cast<DecoderLayer&>(l), p);
}

}  // namespace abm
