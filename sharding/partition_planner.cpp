#include "sharding/partition_planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/check.h"

namespace abm {
namespace {

// Ties between split points happen all the time (identical layers); a relative epsilon
// keeps the choice deterministic instead of depending on rounding noise.
bool less(double a, double b) {
  return std::isinf(b) ? a < b : a < b - 1e-12 * std::max(1.0, std::abs(b));
}

}  // namespace

std::vector<StagePlan> plan_stages(const LlamaConfig& cfg, int stages, int64_t seq_len) {
  return plan_stages(model_costs(cfg, seq_len), stages);
}

std::vector<StagePlan> plan_stages(const ModelCosts& mc, int stages) {
  const int64_t L = mc.layers;
  ABM_REQUIRE(stages >= 1, "--abm-stages must be >= 1, got ", stages);
  ABM_REQUIRE(stages <= L, "--abm-stages ", stages, " is more than the model's ", L,
              " decoder layers (every stage needs at least one layer)");
  const int S = stages;
  const double layer = mc.cost(mc.layer), emb = mc.cost(mc.embedding), head = mc.cost(mc.head);
  // Cost of stage s holding layers [a, b).
  auto stage_cost = [&](int s, int64_t a, int64_t b) {
    return double(b - a) * layer + (s == 0 ? emb : 0.0) + (s == S - 1 ? head : 0.0);
  };
  // best[s][b]: the smallest bottleneck of stages 0..s covering layers [0, b);
  // cut[s][b]: where stage s starts in that optimum.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(S, std::vector<double>(L + 1, inf));
  std::vector<std::vector<int64_t>> cut(S, std::vector<int64_t>(L + 1, 0));
  for (int64_t b = 1; b <= L; ++b) best[0][b] = stage_cost(0, 0, b);
  for (int s = 1; s < S; ++s)
    for (int64_t b = s + 1; b <= L; ++b)
      for (int64_t a = s; a < b; ++a) {
        double v = std::max(best[s - 1][a], stage_cost(s, a, b));
        if (less(v, best[s][b])) best[s][b] = v, cut[s][b] = a;
      }

  std::vector<StagePlan> plan(S);
  int64_t b = L;
  for (int s = S - 1; s >= 0; --s) {
    int64_t a = s == 0 ? 0 : cut[s][b];
    StagePlan& p = plan[s];
    p.stage = s;
    p.first_layer = a;
    p.last_layer = b;
    p.has_embedding = s == 0;
    p.has_head = s == S - 1;
    p.params = (b - a) * mc.layer.params + (p.has_embedding ? mc.embedding.params : 0) +
               (p.has_head ? mc.head.params : 0);
    p.flops = double(b - a) * mc.layer.flops + (p.has_embedding ? mc.embedding.flops : 0) +
              (p.has_head ? mc.head.flops : 0);
    p.cost = stage_cost(s, a, b);
    b = a;
  }
  return plan;
}

std::string plan_table(const std::vector<StagePlan>& plan) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "%-6s %-14s %6s %-10s %12s %12s %7s\n", "stage", "layers",
                "count", "also", "params (M)", "MFLOP/token", "cost");
  out += line;
  double hi = 0;
  for (const StagePlan& p : plan) {
    std::string range = cat("[", p.first_layer, ", ", p.last_layer, ")");
    std::string also = p.has_embedding && p.has_head ? "embed+head"
                       : p.has_embedding             ? "embed"
                       : p.has_head                  ? "head"
                                                     : "-";
    std::snprintf(line, sizeof(line), "%-6d %-14s %6ld %-10s %12.2f %12.2f %7.4f\n", p.stage,
                  range.c_str(), static_cast<long>(p.last_layer - p.first_layer), also.c_str(),
                  p.params / 1e6, p.flops / 1e6, p.cost);
    out += line;
    hi = std::max(hi, p.cost);
  }
  std::snprintf(line, sizeof(line), "max/mean stage cost %.3f (1.000 = perfect balance)\n",
                plan.empty() ? 0.0 : hi * double(plan.size()));
  out += line;
  return out;
}

}  // namespace abm
