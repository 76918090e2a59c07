// Information loss (docs/design.md §3): the part of the full gradient G = dL/dW of a frozen weight
// that the LoRA tangent space {X A + B Y} cannot represent,
//   lost(G) = ||(I - P_B) G (I - P_A)||_F^2
//           = ||G||^2 - ||G Qa||^2 - ||Qb^T G||^2 + ||Qb^T G Qa||^2
// with Qa an orthonormal basis of A's rows and Qb of B's columns (no projector is formed).
// Reported relative to ||G||^2, per module and summed per layer, per module kind, total.
#pragma once
#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "data/batch.h"
#include "lora/adapter_set.h"

namespace abm {

struct InfoLoss {
  double grad_sq = 0;  // ||G||^2
  double lost = 0;     // lost(G)
  double relative() const { return grad_sq > 0 ? lost / grad_sq : 0.0; }
  void add(const InfoLoss& o) { grad_sq += o.grad_sq; lost += o.lost; }
};

// Orthonormal basis of the column space of M [m, k] (rank by SVD with the usual
// tolerance max(m, k) * eps * s_max): [m, rank] float64; [m, 0] for M = 0.
at::Tensor column_basis(const at::Tensor& M);

// G [out, in], A [r, in], B [out, r] -> lost(G) in float64.
InfoLoss information_loss(const at::Tensor& G, const at::Tensor& A, const at::Tensor& B);

struct ModelInfoLoss {
  std::vector<std::pair<std::string, InfoLoss>> modules;  // module order of the set
  std::map<int64_t, InfoLoss> per_layer;
  std::map<std::string, InfoLoss> per_kind;               // "q_proj", ...
  InfoLoss total;
};

// G = dL/dW of every adapted module's frozen weight (module order of the set, fp32
// [out, in]) for the token-weighted mean loss of `rows` of `d`, split over the ranks of
// comm in micro-batches and summed with one all-reduce; dropout off. Needs the whole
// model on every rank; the weights' requires_grad is restored.
std::vector<at::Tensor> frozen_gradients(LlamaModel& model, AdapterSet& adapters,
                                         const Dataset& d, const std::vector<int64_t>& rows,
                                         int64_t micro, Communicator& comm);

// The full gradient of every adapted module's frozen weight for the token-weighted mean
// loss of `rows` of `d` (split over the ranks of comm in micro-batches, summed with one
// all-reduce; dropout off), then the information loss of each module. Needs the whole
// model (embedding to head) on every rank. The weights' requires_grad is restored.
ModelInfoLoss probe_information_loss(LlamaModel& model, AdapterSet& adapters,
                                     const Dataset& d, const std::vector<int64_t>& rows,
                                     int64_t micro, Communicator& comm);

// {"total": r, "per_kind": {...}, "per_layer": {...}} of relative losses, for metrics.
nlohmann::json info_loss_json(const ModelInfoLoss& m);

}  // namespace abm
