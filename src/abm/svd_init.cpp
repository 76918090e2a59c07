#include "abm/svd_init.h"

#include <chrono>

#include "core/check.h"
#include "core/log.h"
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

}  // namespace abm
