#include "abm/svd_init.h"

#include <chrono>
#include <functional>

#include "core/check.h"
#include "core/log.h"
#include "abm/info_loss.h"
#include "lora/lora_ga.h"
#include "lora/pissa.h"

namespace abm {

namespace {

// Each module's factors computed by one rank (round robin over the set's module order, so
// layers and kinds spread evenly) and broadcast from it: `factors(k)` for module k.
std::map<std::string, LoraWeights> shared_factors(
    const AdapterSet& set, Communicator& comm, const std::function<LoraWeights(size_t)>& factors) {
  std::map<std::string, LoraWeights> out;
  const auto& mods = set.modules();
  for (size_t k = 0; k < mods.size(); ++k) {
    const int owner = int(k % size_t(comm.size()));
    LoraWeights w;
    if (owner == comm.rank()) {
      w = factors(k);
    } else {
      w.A = at::empty_like(mods[k].lora->A().detach());
      w.B = at::empty_like(mods[k].lora->B().detach());
    }
    comm.broadcast(w.A, owner);
    comm.broadcast(w.B, owner);
    out[mods[k].name] = w;
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// cfg with a plain init: the adapters attach as usual (B = 0), the factors replace them.
LoraConfig plain(LoraConfig cfg) {
  cfg.init = "kaiming";
  return cfg;
}

}  // namespace

AdapterSet attach_pissa(LlamaModel& model, const LoraConfig& cfg, Communicator& comm) {
  ABM_CHECK(cfg.init == "pissa", "attach_pissa with init ", cfg.init);
  const auto t0 = std::chrono::steady_clock::now();
  AdapterSet set = AdapterSet::attach(model, plain(cfg));
  const auto& mods = set.modules();
  set.restart_from(shared_factors(set, comm, [&](size_t k) {
                     return pissa_factors(mods[k].linear->weight, cfg.r, cfg.scale());
                   }), "pissa");
  log0("pissa: SVD of ", mods.size(), " weights, round robin over ranks on one thread each, "
       "residual base W - s*B0*A0, ", seconds_since(t0), " s");
  return set;
}

AdapterSet attach_lora_ga(LlamaModel& model, const LoraConfig& cfg, const Dataset& d,
                          const std::vector<int64_t>& rows, int64_t micro, Communicator& comm) {
  ABM_CHECK(cfg.init == "lora-ga", "attach_lora_ga with init ", cfg.init);
  const auto t0 = std::chrono::steady_clock::now();
  AdapterSet set = AdapterSet::attach(model, plain(cfg));  // B = 0: the base model's gradient
  const std::vector<at::Tensor> G = frozen_gradients(model, set, d, rows, micro, comm);
  set.restart_from(shared_factors(set, comm, [&](size_t k) { return lora_ga_factors(G[k], cfg.r); }),
                   "lora-ga");
  log0("lora-ga: full gradient of ", set.modules().size(), " weights on ", rows.size(),
       " probe rows, SVDs round robin over ranks, base offset W - s*B0*A0, ", seconds_since(t0), " s");
  return set;
}

}  // namespace abm
