#include "model/layer_recompute.h"

#include "model/projection.h"

namespace abm {
namespace {

// The layer and its config travel as addresses in saved_data (they outlive the step).
// `anchor` is an empty tensor that requires grad: the first layer's input (the frozen
// embedding's output) does not, and without one input that does autograd would never
// call backward(), where the adapters' gradients are made.
struct LayerRecompute : torch::autograd::Function<LayerRecompute> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& anchor, const at::Tensor& cos, const at::Tensor& sin,
                            const at::Tensor& mask, int64_t layer, int64_t cfg, bool sdpa) {
    const auto* l = reinterpret_cast<const DecoderLayer*>(layer);
    ctx->save_for_backward({x, cos, sin, mask});
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["cfg"] = cfg;
    ctx->saved_data["sdpa"] = sdpa;
    for_each_projection(*l, [&](const ProjInfo& p, const Linear& lin) {
      at::Tensor s = lin.adapter ? lin.adapter->rng_state() : at::Tensor();
      if (s.defined()) ctx->saved_data[std::string("rng.") + p.kind] = s;
    });
    return l->forward(*reinterpret_cast<const LlamaConfig*>(cfg), x, cos, sin, mask, {}, sdpa);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto saved = ctx->get_saved_variables();
    const auto* l = reinterpret_cast<const DecoderLayer*>(ctx->saved_data["layer"].toInt());
    const auto* cfg = reinterpret_cast<const LlamaConfig*>(ctx->saved_data["cfg"].toInt());
    for_each_projection(*l, [&](const ProjInfo& p, const Linear& lin) {  // the forward's masks again
      auto it = ctx->saved_data.find(std::string("rng.") + p.kind);
      if (it != ctx->saved_data.end()) lin.adapter->set_rng_state(it->second.toTensor());
    });
    at::Tensor x = saved[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode on(true);
      y = l->forward(*cfg, x, saved[1], saved[2], saved[3], {}, ctx->saved_data["sdpa"].toBool());
    }
    torch::autograd::backward({y}, {g[0]});  // adds into the adapters' .grad
    return {x.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor recomputed_layer(const DecoderLayer& layer, const LlamaConfig& cfg, const at::Tensor& x,
                            const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                            bool sdpa) {
  static thread_local at::Tensor anchor = at::empty({0}).requires_grad_(true);
  return LayerRecompute::apply(x, anchor, cos, sin, mask, reinterpret_cast<int64_t>(&layer),
                               reinterpret_cast<int64_t>(&cfg), sdpa);
}

}  // namespace abm
