#include "abm/svd_init.h"

#include <chrono>

#include "core/check.h"
#include "core/log.h"
#include "abm/info_loss.h"
#include "lora/lora_ga.h"
#include "lora/pissa.h"

namespace abm {

AdapterSet attach_pissa(LlamaModel& model, const LoraConfig& cfg, Communicator& comm) {
  ABM_CHECK(cfg.init == "pissa", "attach_pissa with init ", cfg.init);
  cfg.validate_for(model.config());
  const auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, LoraWeights> factors;
  int64_t i = 0, mine = 0;
  for (int64_t layer = model.first(); layer < model.last(); ++layer) {
    DecoderLayer& l = model.layers()[layer - model.first()];
    for (const std::string& kind : cfg.target_modules()) {
      const Proj p = *projection_of(kind);
      const at::Tensor& W = projection(l, p).weight;  // [out, in]
      LoraWeights w;
      const int owner = int(i++ % comm.size());
      if (owner == comm.rank()) {
        w = pissa_factors(W, cfg.r, cfg.scale());
        ++mine;
      } else {
        auto f32 = at::TensorOptions().dtype(at::kFloat).device(W.device());
        w.A = at::empty({cfg.r, W.size(1)}, f32);
        w.B = at::empty({W.size(0), cfg.r}, f32);
      }
      comm.broadcast(w.A, owner);
      comm.broadcast(w.B, owner);
      factors[projection_module_name(layer, p)] = w;
    }
  }
  AdapterSet set = AdapterSet::attach_weights(model, cfg, factors, "PiSSA");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log0("pissa: SVD of ", i, " weights (", mine, " on rank 0, one thread each), residual base "
       "W - s*B0*A0, ", s, " s");
  return set;
}

AdapterSet attach_lora_ga(LlamaModel& model, const LoraConfig& cfg, const Dataset& d,
                          const std::vector<int64_t>& rows, int64_t micro, Communicator& comm) {
  ABM_CHECK(cfg.init == "lora-ga", "attach_lora_ga with init ", cfg.init);
  const auto t0 = std::chrono::steady_clock::now();
  LoraConfig plain = cfg;
  plain.init = "kaiming";  // B = 0: the gradient is the base model's
  AdapterSet set = AdapterSet::attach(model, plain);
  const std::vector<at::Tensor> G = frozen_gradients(model, set, d, rows, micro, comm);
  std::map<std::string, LoraWeights> factors;
  const auto& mods = set.modules();
  for (size_t k = 0; k < mods.size(); ++k) {
    const int owner = int(k % size_t(comm.size()));
    LoraWeights w;
    if (owner == comm.rank()) {
      w = lora_ga_factors(G[k], cfg.r);
    } else {
      w.A = at::empty_like(mods[k].lora->A().detach());
      w.B = at::empty_like(mods[k].lora->B().detach());
    }
    comm.broadcast(w.A, owner);
    comm.broadcast(w.B, owner);
    factors[mods[k].name] = w;
  }
  set.restart_from(factors, "lora-ga");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log0("lora-ga: full gradient of ", mods.size(), " weights on ", rows.size(),
       " probe rows, SVDs round robin over ranks, base offset W - s*B0*A0, ", s, " s");
  return set;
}

}  // namespace abm
