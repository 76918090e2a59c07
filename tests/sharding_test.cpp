// The partition planner (optimal against brute force, balanced within one layer's cost,
// every layer owned once, errors), the stage map, loading one stage, and the stage
// transport under mpirun: values that pass through every stage forward and back arrive
// bit-exact, a shape/dtype mismatch fails naming both shapes, and a 2/3-stage pipeline
// over the embedded default model gives the single-process logits exactly.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <functional>

#include "comm/mpi_communicator.h"
#include "core/check.h"
#include "core/runtime.h"
#include "sharding/partition_planner.h"
#include "sharding/stage_loader.h"
#include "sharding/stage_map.h"
#include "sharding/stage_transport.h"
#include "mpi_test_main.h"

namespace {

using namespace abm;

abm::MpiCommunicator* g_comm = nullptr;

LlamaConfig llama2_7b() {
  LlamaConfig c;
  c.hidden = 4096;
  c.intermediate = 11008;
  c.layers = 32;
  c.heads = c.kv_heads = 32;
  c.head_dim = 128;
  c.vocab = 32000;
  return c;
}

std::string default_model() { return std::string(ABM_SOURCE_DIR) + "/models/default"; }

// Smallest bottleneck over every way to cut L layers into S non-empty contiguous stages.
double brute_force_bottleneck(const ModelCosts& mc, int S) {
  const double layer = mc.cost(mc.layer), emb = mc.cost(mc.embedding), head = mc.cost(mc.head);
  double best = 1e300;
  std::vector<int64_t> cuts(S + 1);
  std::function<void(int, int64_t, double)> go = [&](int s, int64_t a, double worst) {
    if (s == S - 1) {
      double c = double(mc.layers - a) * layer + head + (s == 0 ? emb : 0);
      best = std::min(best, std::max(worst, c));
      return;
    }
    for (int64_t b = a + 1; b <= mc.layers - (S - 1 - s); ++b)
      go(s + 1, b, std::max(worst, double(b - a) * layer + (s == 0 ? emb : 0)));
  };
  go(0, 0, 0.0);
  return best;
}

// Every layer exactly once, in order; embed on the first stage, head on the last.
void expect_valid(const std::vector<StagePlan>& plan, int64_t layers) {
  ASSERT_FALSE(plan.empty());
  int64_t next = 0;
  double sum = 0;
  for (size_t s = 0; s < plan.size(); ++s) {
    EXPECT_EQ(plan[s].stage, int(s));
    EXPECT_EQ(plan[s].first_layer, next);
    EXPECT_GT(plan[s].last_layer, plan[s].first_layer);
    EXPECT_EQ(plan[s].has_embedding, s == 0);
    EXPECT_EQ(plan[s].has_head, s + 1 == plan.size());
    next = plan[s].last_layer;
    sum += plan[s].cost;
  }
  EXPECT_EQ(next, layers);
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

double max_cost(const std::vector<StagePlan>& plan) {
  double m = 0;
  for (auto& p : plan) m = std::max(m, p.cost);
  return m;
}

TEST(Planner, Llama7bTwoStagesSplitsInHalf) {
  auto plan = plan_stages(llama2_7b(), 2, 512);
  expect_valid(plan, 32);
  EXPECT_EQ(plan[0].last_layer, 16);
  // 16 layers of 202,383,360 parameters, plus the 32000 x 4096 embedding / head (+ norm).
  EXPECT_EQ(plan[0].params, 16 * int64_t{202383360} + 131072000);
  EXPECT_EQ(plan[1].params, 16 * int64_t{202383360} + 131072000 + 4096);
  // Forward FLOPs/token: a layer is 2 * 202,375,168 matmul weights + 2 * 4096 * 512.
  EXPECT_EQ(plan[0].flops, 16 * (2.0 * 202375168 + 2.0 * 4096 * 512));
  EXPECT_EQ(plan[1].flops, plan[0].flops + 2.0 * 32000 * 4096);
}

TEST(Planner, TableIsPinned) {
  auto plan = plan_stages(llama2_7b(), 2, 512);
  EXPECT_EQ(plan_table(plan),
            "stage  layers          count also         params (M)  MFLOP/token    cost\n"
            "0      [0, 16)            16 embed           3369.21      6543.11  0.4951\n"
            "1      [16, 32)           16 head            3369.21      6805.26  0.5049\n"
            "max/mean stage cost 1.010 (1.000 = perfect balance)\n");
}

TEST(Planner, UniformLayersSplitEvenly) {
  ModelCosts mc;
  mc.layers = 10;
  mc.layer = {1, 1.0};
  mc.total_params = 10;
  mc.total_flops = 10;
  for (int S = 1; S <= 10; ++S) {
    auto plan = plan_stages(mc, S);
    expect_valid(plan, 10);
    for (auto& p : plan) {
      int64_t n = p.last_layer - p.first_layer;
      EXPECT_TRUE(n == 10 / S || n == (10 + S - 1) / S) << "S=" << S << " stage " << p.stage;
    }
  }
}

TEST(Planner, OptimalAgainstBruteForce) {
  // Head worth 0..3 layers, embedding 0..1 layer: the DP must find the brute-force optimum.
  for (int64_t L = 1; L <= 9; ++L)
    for (double head : {0.0, 1.0, 3.0})
      for (double emb : {0.0, 0.5, 1.0})
        for (int S = 1; S <= L; ++S) {
          ModelCosts mc;
          mc.layers = L;
          mc.layer = {2, 2.0};
          mc.embedding = {int64_t(2 * emb), 2 * emb};
          mc.head = {int64_t(2 * head), 2 * head};
          mc.total_params = mc.layers * 2 + mc.embedding.params + mc.head.params;
          mc.total_flops = mc.layers * 2.0 + mc.embedding.flops + mc.head.flops;
          auto plan = plan_stages(mc, S);
          expect_valid(plan, L);
          EXPECT_NEAR(max_cost(plan), brute_force_bottleneck(mc, S), 1e-12)
              << "L=" << L << " S=" << S << " head=" << head << " emb=" << emb;
          // Never worse than a perfect share plus the largest single piece.
          double piece = std::max({mc.cost(mc.layer), mc.cost(mc.embedding), mc.cost(mc.head)});
          EXPECT_LE(max_cost(plan), 1.0 / S + piece + 1e-12);
        }
}

TEST(Planner, BalancedWithinOneLayer) {
  LlamaConfig dflt = LlamaConfig::load(default_model() + "/config.json");
  for (auto [cfg, T] : {std::pair{llama2_7b(), int64_t{512}}, std::pair{llama2_7b(), int64_t{4096}},
                        std::pair{dflt, int64_t{256}}}) {
    ModelCosts mc = model_costs(cfg, T);
    for (int S = 1; S <= cfg.layers; ++S) {
      auto plan = plan_stages(cfg, S, T);
      expect_valid(plan, cfg.layers);
      EXPECT_LE(max_cost(plan), 1.0 / S + mc.cost(mc.layer) + 1e-12)
          << "layers " << cfg.layers << " S=" << S << " T=" << T;
    }
  }
}

TEST(Planner, MoreStagesThanLayersIsOneLineError) {
  LlamaConfig dflt = LlamaConfig::load(default_model() + "/config.json");
  try {
    plan_stages(dflt, 7, 256);
    FAIL() << "no error";
  } catch (const abm::Error& e) {
    EXPECT_STREQ(e.what(), "--abm-stages 7 is more than the model's 6 decoder layers (every "
                           "stage needs at least one layer)");
  }
  EXPECT_THROW(plan_stages(dflt, 0, 256), abm::Error);
}

TEST(StageMapTest, ConsecutiveRanksFormOnePipeline) {
  StageMap m(6, 3);
  EXPECT_EQ(m.replicas(), 2);
  std::vector<int> stage, replica, prev, next;
  for (int r = 0; r < 6; ++r) {
    stage.push_back(m.stage_of(r));
    replica.push_back(m.replica_of(r));
    prev.push_back(m.prev_rank(r));
    next.push_back(m.next_rank(r));
    EXPECT_EQ(m.rank_of(m.stage_of(r), m.replica_of(r)), r);
  }
  EXPECT_EQ(stage, (std::vector<int>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(replica, (std::vector<int>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(prev, (std::vector<int>{-1, 0, 1, -1, 3, 4}));
  EXPECT_EQ(next, (std::vector<int>{1, 2, -1, 4, 5, -1}));
  EXPECT_EQ(StageMap(4, 0).stages(), 4);  // default: one stage per rank
  try {
    StageMap(4, 3);
    FAIL() << "no error";
  } catch (const abm::Error& e) {
    EXPECT_STREQ(e.what(), "--abm-stages 3 must divide the number of ranks (4); valid: 1, 2, 4");
  }
}

TEST(StageLoader, LoadsOnlyItsTensorsWithTheFullModelsValues) {
  LlamaModel full = LlamaModel::load(default_model());
  auto plan = plan_stages(full.config(), 3, 256);
  std::map<std::string, at::Tensor> want;
  for (auto& [n, t] : full.named_weights()) want[n] = t;
  size_t seen = 0;
  for (auto& p : plan) {
    LlamaModel st = load_stage(default_model(), p);
    EXPECT_EQ(st.first(), p.first_layer);
    EXPECT_EQ(st.last(), p.last_layer);
    EXPECT_EQ(st.has_embedding(), p.has_embedding);
    EXPECT_EQ(st.has_head(), p.has_head);
    for (auto& [n, t] : st.named_weights()) {
      ASSERT_TRUE(want.count(n)) << n;
      EXPECT_TRUE(at::equal(t, want[n])) << n;
      // Tied embedding: the last stage's head holds no tensor of its own name.
      if (n != "model.embed_tokens.weight" || p.has_embedding) ++seen;
    }
  }
  EXPECT_EQ(seen, want.size());  // every weight loaded by exactly one stage
}

// ---- under mpirun: one stage per rank -------------------------------------------------

// Stage s maps a hidden state x to 2x + s; its gradient maps g to 2g.
at::Tensor stage_fn(const at::Tensor& x, int s) { return x * 2 + s; }

TEST(Transport, ForwardAndBackwardAreExact) {
  const int world = Runtime::size(), rank = Runtime::rank();
  if (world < 2) GTEST_SKIP() << "needs mpirun -np >= 2";
  StageMap map(world, world);
  StageTransport tr(*g_comm, map);
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (int64_t micro = 0; micro < 3; ++micro) {
      // [B=2, T=5, H=8] small integers: every stage's 2x + s stays exact in bf16 for 3 stages.
      at::Tensor x0 = (at::arange(80).reshape({2, 5, 8}).remainder(7) + micro).to(dt);
      at::Tensor want = x0;
      for (int s = 0; s < world; ++s) want = stage_fn(want, s);
      at::Tensor h = rank == 0 ? x0 : tr.recv_forward({2, 5, 8}, dt, micro);
      h = stage_fn(h, rank);
      if (tr.next_rank() >= 0) tr.send_forward(h, micro);
      else EXPECT_TRUE(at::equal(h, want)) << "forward, dtype " << dt << " micro " << micro;

      at::Tensor g0 = at::full({2, 5, 8}, double(micro + 1), dt);
      at::Tensor g = tr.next_rank() < 0 ? g0 : tr.recv_backward({2, 5, 8}, dt, micro);
      g = g * 2;
      if (tr.prev_rank() >= 0) tr.send_backward(g, micro);
      else EXPECT_TRUE(at::equal(g, g0 * double(1 << world))) << "backward, dtype " << dt;
    }
  }
}

TEST(Transport, MismatchNamesBothShapesAndLeavesTheChannelClean) {
  const int world = Runtime::size(), rank = Runtime::rank();
  if (world < 2) GTEST_SKIP() << "needs mpirun -np >= 2";
  StageMap map(world, world);
  StageTransport tr(*g_comm, map);
  if (rank == 0) tr.send_forward(at::zeros({2, 3, 4}), 0);
  if (rank == 1) {
    try {
      tr.recv_forward({2, 3, 5}, at::kBFloat16, 0);
      ADD_FAILURE() << "no error";
    } catch (const abm::Error& e) {
      EXPECT_STREQ(e.what(), "stage transport: hidden state of micro-batch 0 from rank 0 is "
                             "[2, 3, 4] Float, but rank 1 (stage 1) expects [2, 3, 5] "
                             "BFloat16 of micro-batch 0");
    }
  }
  // The next message on the same channel arrives intact (the bad payload was drained).
  if (rank == 0) tr.send_forward(at::ones({1, 1, 2}), 1);
  if (rank == 1) EXPECT_TRUE(at::equal(tr.recv_forward({1, 1, 2}, at::kFloat, 1), at::ones({1, 1, 2})));
  // Out-of-order micro-batches are caught too.
  if (rank == 0) tr.send_forward(at::ones({1, 1, 2}), 5);
  if (rank == 1) EXPECT_THROW(tr.recv_forward({1, 1, 2}, at::kFloat, 4), abm::Error);
  g_comm->barrier();
}

TEST(Pipeline, StagesOfTheDefaultModelGiveTheFullLogits) {
  const int world = Runtime::size(), rank = Runtime::rank();
  if (world < 2) GTEST_SKIP() << "needs mpirun -np >= 2";
  at::NoGradGuard ng;
  StageMap map(world, world);
  LlamaConfig cfg = LlamaConfig::load(default_model() + "/config.json");
  auto plan = plan_stages(cfg, world, 16);
  LlamaModel mine = load_stage(default_model(), plan[map.stage_of(rank)]);
  StageTransport tr(*g_comm, map);
  at::Tensor ids = at::arange(32, at::kLong).reshape({2, 16}).mul(37).remainder(cfg.vocab);
  at::Tensor h = rank == 0 ? mine.embed(ids) : tr.recv_forward({2, 16, cfg.hidden}, at::kFloat, 0);
  h = mine.forward_layers(h);
  if (tr.next_rank() >= 0) {
    tr.send_forward(h, 0);
  } else {
    at::Tensor want = LlamaModel::load(default_model()).forward(ids);
    EXPECT_TRUE(at::equal(mine.head(h), want)) << "max diff "
        << (mine.head(h) - want).abs().max().item<float>();
  }
}
}  // namespace

int main(int argc, char** argv) {
  return abm::test::mpi_test_main(argc, argv, [] {
    abm::MpiCommunicator comm;
    g_comm = &comm;
    const bool failed = RUN_ALL_TESTS() != 0;
    g_comm = nullptr;
    return failed;
  });
}
