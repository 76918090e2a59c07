#include "abm/info_loss.h"

#include <limits>

#include "core/check.h"
#include "data/loss.h"
#include "data/sampler.h"
#include "train/evaluate.h"

namespace abm {

at::Tensor column_basis(const at::Tensor& M) {
  at::Tensor m = M.detach().to(at::kDouble);
  auto [U, S, Vh] = at::linalg_svd(m, /*full_matrices=*/false);
  if (S.numel() == 0) return at::zeros({m.size(0), 0}, at::kDouble);
  const double tol = double(std::max(m.size(0), m.size(1))) *
                     std::numeric_limits<double>::epsilon() * S.max().item<double>();
  const int64_t rank = (S > tol).sum().item<int64_t>();
  return U.narrow(1, 0, rank);  // [m, rank]
}

InfoLoss information_loss(const at::Tensor& G, const at::Tensor& A, const at::Tensor& B) {
  ABM_CHECK(G.dim() == 2 && A.dim() == 2 && B.dim() == 2 && A.size(1) == G.size(1) &&
                B.size(0) == G.size(0) && A.size(0) == B.size(1),
            "information loss: G ", G.sizes(), ", A ", A.sizes(), ", B ", B.sizes());
  at::Tensor g = G.detach().to(at::kDouble);        // [out, in]
  at::Tensor Qa = column_basis(A.t());              // [in, ra]
  at::Tensor Qb = column_basis(B);                  // [out, rb]
  at::Tensor GQa = at::matmul(g, Qa);               // [out, ra]
  at::Tensor QbG = at::matmul(Qb.t(), g);           // [rb, in]
  at::Tensor QbGQa = at::matmul(QbG, Qa);           // [rb, ra]
  InfoLoss r;
  r.grad_sq = g.pow(2).sum().item<double>();
  r.lost = r.grad_sq - GQa.pow(2).sum().item<double>() - QbG.pow(2).sum().item<double>() +
           QbGQa.pow(2).sum().item<double>();
  r.lost = std::max(0.0, r.lost);  // rounding can leave -1e-16 when nothing is lost
  return r;
}

std::vector<at::Tensor> frozen_gradients(LlamaModel& model, AdapterSet& adapters,
                                         const Dataset& d, const std::vector<int64_t>& rows,
                                         int64_t micro, Communicator& comm) {
  ABM_CHECK(model.has_embedding() && model.has_head(), "the full gradient needs the whole model");
  const auto& mods = adapters.modules();
  std::vector<at::Tensor> W;
  for (const auto& m : mods) {
    W.push_back(m.linear->weight);
    W.back().requires_grad_(true);
    W.back().mutable_grad() = at::Tensor();
  }
  adapters.set_train(false);
  SampleRange mine = shard(static_cast<int64_t>(rows.size()), comm.rank(), comm.size());
  int64_t count = 0;
  for (int64_t i = mine.begin; i < mine.end; i += micro) {
    std::vector<int64_t> part(rows.begin() + i, rows.begin() + std::min(mine.end, i + micro));
    Batch b = make_batch(d, part);
    TokenLoss tl = token_loss_sum(batch_logits(model, b), b.labels);
    // Only the frozen weights' gradients are wanted; LoRA grads would be a side effect.
    auto g = torch::autograd::grad({tl.sum}, W, {}, /*retain_graph=*/false, false, /*allow_unused=*/true);
    for (size_t k = 0; k < W.size(); ++k)
      if (g[k].defined()) {
        at::Tensor gf = g[k].to(at::kFloat);
        if (W[k].grad().defined()) W[k].mutable_grad().add_(gf);
        else W[k].mutable_grad() = gf;
      }
    count += tl.count;
  }
  // Flatten every G into one buffer: one all-reduce of gradients and the target count.
  int64_t total = 1;
  for (auto& w : W) total += w.numel();
  at::Tensor flat = at::zeros({total}, at::kFloat);
  int64_t off = 0;
  for (auto& w : W) {
    if (w.grad().defined()) flat.narrow(0, off, w.numel()).copy_(w.grad().reshape({-1}));
    off += w.numel();
  }
  flat[off] = double(count);
  comm.all_reduce(flat);
  const double targets = flat[off].item<double>();
  ABM_REQUIRE(targets > 0, "full gradient: the probe batch has no trained tokens");
  std::vector<at::Tensor> G;
  off = 0;
  for (size_t k = 0; k < W.size(); ++k) {
    G.push_back(flat.narrow(0, off, W[k].numel()).view(W[k].sizes()) / targets);  // [out, in]
    off += W[k].numel();
    W[k].mutable_grad() = at::Tensor();
    W[k].requires_grad_(false);
  }
  return G;
}

ModelInfoLoss probe_information_loss(LlamaModel& model, AdapterSet& adapters,
                                     const Dataset& d, const std::vector<int64_t>& rows,
                                     int64_t micro, Communicator& comm) {
  const std::vector<at::Tensor> G = frozen_gradients(model, adapters, d, rows, micro, comm);
  const auto& mods = adapters.modules();
  ModelInfoLoss res;
  for (size_t k = 0; k < G.size(); ++k) {
    InfoLoss il = information_loss(G[k], mods[k].lora->A(), mods[k].lora->B());
    res.modules.push_back({mods[k].name, il});
    res.per_layer[mods[k].layer].add(il);
    res.per_kind[mods[k].kind].add(il);
    res.total.add(il);
  }
  return res;
}

nlohmann::json info_loss_json(const ModelInfoLoss& m) {
  nlohmann::json j = {{"total", m.total.relative()}};
  for (auto& [k, v] : m.per_kind) j["per_kind"][k] = v.relative();
  for (auto& [l, v] : m.per_layer) j["per_layer"][std::to_string(l)] = v.relative();
  return j;
}

}  // namespace abm
