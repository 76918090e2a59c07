// ABM (src/abm) against independent references: the boundary loss and its gradient vs a
// plain-torch implementation of docs/design.md §2 (tests/ref/abm_ref.py); the information loss vs
// explicit projectors; the ABM run's behaviour (sign agreement, margin violations, teacher
// adapters); and the same adapter on 1 rank and on 2 data-parallel ranks (real mpirun).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "abm/abm_config.h"
#include "abm/abm_trainer.h"
#include "abm/boundary_loss.h"
#include "abm/info_loss.h"
#include "comm/local_communicator.h"
#include "core/check.h"
#include "lora/init.h"
#include "lora/peft_io.h"
#include "model/safetensors.h"
#include "abm_fixture.h"

using namespace abm;
using namespace abm::test;


TEST(AbmConfig, LayerSelectionAndWeights) {
  EXPECT_EQ(select_abm_layers("last-half", 8), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(select_abm_layers("last-half", 5), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(select_abm_layers("all", 3), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(select_abm_layers("last:2", 6), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(select_abm_layers("5,1,3,1", 6), (std::vector<int64_t>{1, 3, 5}));
  for (const char* bad : {"last:0", "last:7", "6", "-1", "1,x", "half", ""})
    EXPECT_THROW(select_abm_layers(bad, 6), Error) << bad;
  std::vector<double> c = abm_layer_weights(4);
  EXPECT_EQ(c, (std::vector<double>{1 / 16.0, 4 / 16.0, 9 / 16.0, 1.0}));
}

// The loss and dL/dz of three weighted layers, with padding and teacher values exactly 0.
TEST(BoundaryLoss, LossAndGradientMatchTorchReference) {
  TempDir tmp;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t n = 3, B = 2, T = 5, I = 7;
  const double margin = 0.5;
  at::Tensor real = at::ones({B, T}, at::kBool);
  real[1].narrow(0, 3, 2).fill_(false);  // row 1: 3 real tokens, 2 padding
  NamedTensors in = {{"real", real.to(at::kFloat)}, {"margin", at::full({1}, margin)}};
  std::vector<at::Tensor> z, t;
  for (int64_t j = 0; j < n; ++j) {
    z.push_back(at::randn({B, T, I}, gen).requires_grad_(true));
    at::Tensor tj = at::randn({B, T, I}, gen);
    tj.masked_fill_(at::rand({B, T, I}, gen) < 0.25, 0.0);  // exact zeros: inactive
    t.push_back(tj);
    in.push_back({"z" + std::to_string(j), z.back().detach()});
    in.push_back({"t" + std::to_string(j), tj});
  }
  save_safetensors(tmp / "in.safetensors", in);
  oracle("abm_ref.py " + (tmp / "in.safetensors") + " " + (tmp / "out.safetensors"));
  SafetensorsFile ref(tmp / "out.safetensors");

  const std::vector<double> c = abm_layer_weights(n);
  const double tokens = real.sum().item<double>();
  at::Tensor L = at::zeros({}, at::kFloat);
  for (int64_t j = 0; j < n; ++j)
    L = L + boundary_loss_sum(z[j], t[j] > 0, real, margin) * (c[j] / n / (tokens * I));
  L.backward();
  const double ref_loss = ref.read("loss", at::kFloat).item<double>();
  EXPECT_NEAR(L.item<double>(), ref_loss, 1e-6 * ref_loss);
  for (int64_t j = 0; j < n; ++j) {
    at::Tensor g = ref.read("grad" + std::to_string(j), at::kFloat);
    EXPECT_LE(max_abs_diff(z[j].grad(), g), 1e-6 * g.abs().max().item<double>()) << j;
    EXPECT_EQ(z[j].grad()[1].narrow(0, 3, 2).abs().max().item<float>(), 0.0f);  // padding
  }
  // The counters: agreement and violations by hand on layer 0.
  BoundaryCounts k = boundary_counts(z[0], t[0] > 0, real, margin);
  at::Tensor r3 = real.unsqueeze(-1).expand({B, T, I});
  at::Tensor zz = z[0].detach(), tau = (t[0] > 0).to(at::kFloat) * 2 - 1;
  EXPECT_EQ(k.units, tokens * I);
  EXPECT_EQ(k.agree, ((zz > 0) == (t[0] > 0)).logical_and(r3).sum().item<int64_t>());
  EXPECT_EQ(k.violations, (tau * zz < margin).logical_and(r3).sum().item<int64_t>());
}

namespace {

// lost(G) = ||(I - P_B) G (I - P_A)||^2 with projectors from pseudo-inverses.
double explicit_lost(const at::Tensor& G, const at::Tensor& A, const at::Tensor& B) {
  at::Tensor g = G.to(at::kDouble), a = A.to(at::kDouble), b = B.to(at::kDouble);
  at::Tensor PA = at::matmul(at::linalg_pinv(a), a);  // [in, in] onto A's row space
  at::Tensor PB = at::matmul(b, at::linalg_pinv(b));  // [out, out] onto B's column space
  at::Tensor Iin = at::eye(g.size(1), at::kDouble), Iout = at::eye(g.size(0), at::kDouble);
  return at::matmul(at::matmul(Iout - PB, g), Iin - PA).pow(2).sum().item<double>();
}

}  // namespace

TEST(InfoLoss, EqualsExplicitProjectors) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (int trial = 0; trial < 5; ++trial) {
    const int64_t out = 12 + trial, in = 9 + 2 * trial, r = 1 + trial % 4;
    at::Tensor G = at::randn({out, in}, gen), A = at::randn({r, in}, gen), B = at::randn({out, r}, gen);
    InfoLoss il = information_loss(G, A, B);
    const double want = explicit_lost(G, A, B);
    EXPECT_NEAR(il.lost, want, 1e-6 * want) << trial;
    EXPECT_NEAR(il.grad_sq, G.to(at::kDouble).pow(2).sum().item<double>(), 1e-9 * il.grad_sq);
    // B = 0: only ||G Qa||^2 is kept.
    InfoLoss z = information_loss(G, A, at::zeros({out, r}));
    at::Tensor Qa = std::get<0>(at::linalg_qr(A.to(at::kDouble).t()));  // [in, r]
    const double kept = at::matmul(G.to(at::kDouble), Qa).pow(2).sum().item<double>();
    EXPECT_NEAR(z.lost, z.grad_sq - kept, 1e-9 * z.grad_sq) << trial;
    EXPECT_NEAR(z.lost, explicit_lost(G, A, at::zeros({out, r})), 1e-6 * z.lost);
  }
  // Full-rank A (r = in) or full-rank B (r = out) loses nothing.
  at::Tensor G = at::randn({6, 5}, gen);
  EXPECT_LE(information_loss(G, at::randn({5, 5}, gen), at::randn({6, 5}, gen)).relative(), 1e-12);
  EXPECT_LE(information_loss(G, at::randn({6, 5}, gen), at::randn({6, 6}, gen)).relative(), 1e-12);
}

// ABM with the base teacher keeps the signs (>= 99% agreement on average) and pushes the
// pre-activations out of the margin (fewer violations), on the real pretrained
// stories260K at the default lr. (A random tiny model has many |z| ~ 0, where any update
// flips signs, so this needs real weights.)
TEST(Abm, BaseTeacherKeepsSignsAndReducesViolations) {
  const std::string bin = peer("stories260K.bin");
  if (bin.empty()) GTEST_SKIP() << "../shared/peers/stories260K.bin missing";
  TempDir tmp;
  ASSERT_EQ(run(std::string(ABM_BINARY) + " import-llama2c " + bin + " " + (tmp / "model")).status, 0);
  {
    std::ofstream out(tmp / "data.jsonl");
    for (int i = 0; i < 24; ++i) {
      nlohmann::json ids = nlohmann::json::array({1});
      for (int j = 1; j < 20 + (i * 5) % 31; ++j) ids.push_back(3 + (i * 13 + j * 7) % 500);
      out << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
    }
  }
  abm_init(tmp, 1, "a", "--abm-steps 30 --abm-batch 2 --abm-layers all");
  nlohmann::json j = read_json(tmp / "a/abm.json");
  ASSERT_EQ(j["layers"].size(), 5u);
  for (size_t l = 0; l < 5; ++l) {
    EXPECT_EQ(j["accuracy_before"][l].get<double>(), 1.0) << l;  // B = 0: the student is the base
    EXPECT_GE(j["accuracy_after"][l].get<double>(), 0.98) << l;
    EXPECT_LE(j["violation_after"][l].get<double>(), j["violation_before"][l].get<double>()) << l;
  }
  std::printf("agreement after %.4f, violations %.4f -> %.4f\n", mean(j["accuracy_after"]),
              mean(j["violation_before"]), mean(j["violation_after"]));
  EXPECT_GE(mean(j["accuracy_after"]), 0.99);
  EXPECT_LT(mean(j["violation_after"]), mean(j["violation_before"]) - 0.005);
  EXPECT_LT(j["loss_after"].get<double>(), j["loss_before"].get<double>());
  EXPECT_EQ(j["loss"].size(), 30u);
  EXPECT_EQ(j["indices"].size(), 8u);
}

// With B = 0 and the base as teacher, run()'s "before" report comes from the teacher pass
// (no pass of its own): it must equal report() measured separately, and must not be used
// once a B is non-zero (the student then differs from the teacher).
TEST(Abm, BeforeReportFromTheTeacherPassEqualsItsOwnPass) {
  TempDir tmp;
  make_abm_fixture(tmp);
  LlamaModel model = LlamaModel::load(tmp / "model");
  LoraConfig lc;
  lc.r = 4;
  lc.seed = 5;
  lc.targets = {"all-linear"};
  RepresentativeBatch rb;
  const auto rows = abm_fixture_rows();
  for (int64_t k = 0; k < 6; ++k) {
    rb.indices.push_back(k);
    rb.ids.push_back(rows[k]);
  }
  AbmConfig cfg;
  cfg.steps = 0;
  cfg.micro_batch = 2;
  const std::vector<int64_t> layers = {1, 2};
  LocalCommunicator self;
  for (bool zero_b : {true, false}) {
    AdapterSet student = AdapterSet::attach(model, lc);
    if (!zero_b) {
      at::NoGradGuard ng;
      student.modules()[0].lora->B().normal_(0, 0.5);  // layer 0 q_proj: moves layers 1, 2
    }
    AbmTrainer t(cfg, model, student, rb, layers, {0.25, 1.0}, self);
    t.capture_base_teacher();
    const BoundaryReport own = t.report();
    const AbmResult r = t.run();  // 0 steps: before and after both describe the init
    for (const BoundaryReport* got : {&r.before, &r.after}) {
      EXPECT_EQ(got->loss, own.loss) << zero_b;
      ASSERT_EQ(got->layers.size(), 2u);
      for (size_t j = 0; j < 2; ++j) {
        EXPECT_EQ(got->layers[j].units, own.layers[j].units);
        EXPECT_EQ(got->layers[j].agree, own.layers[j].agree);
        EXPECT_EQ(got->layers[j].violations, own.layers[j].violations);
      }
    }
    EXPECT_GT(own.layers[1].violations, 0);
    if (zero_b) EXPECT_EQ(own.layers[1].agree, own.layers[1].units);
    else EXPECT_LT(own.layers[1].agree, own.layers[1].units);  // the student left the teacher
    student.detach();
  }
}

// With a teacher adapter, the student's agreement with that teacher rises.
TEST(Abm, TeacherAdapterAgreementRises) {
  TempDir tmp;
  make_abm_fixture(tmp);
  {
    LlamaModel m = LlamaModel::load(tmp / "model");
    LoraConfig c;
    c.targets = {"q_proj", "v_proj", "gate_proj", "up_proj"};
    c.r = 4;
    c.alpha = 8;
    c.seed = 99;
    AdapterSet set = AdapterSet::attach(m, c);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
    at::NoGradGuard ng;
    for (auto& mod : set.modules()) mod.lora->B().normal_(0.0, 0.5, gen);
    export_peft(set, tmp / "model", tmp / "teacher");
  }
  abm_init(tmp, 1, "a", "--abm-steps 40 --abm-lr 2e-2 --abm-batch 2 --abm-layers all --teacher-adapter " +
                            (tmp / "teacher"));
  nlohmann::json j = read_json(tmp / "a/abm.json");
  const double before = mean(j["accuracy_before"]), after = mean(j["accuracy_after"]);
  std::printf("agreement with the teacher adapter: %.4f -> %.4f\n", before, after);
  EXPECT_LT(before, 0.99);  // the teacher adapter really moved the boundaries
  EXPECT_GT(after, before + 0.01);
  EXPECT_LT(j["loss_after"].get<double>(), j["loss_before"].get<double>());
}

// The same seed gives the same adapter twice on 1 rank, and on 2 data-parallel ranks
// (--abm-stages 1: one stage, every rank holds every layer)
// (each ABM step's 2 samples split 1 + 1; the gradient sum of two terms is order-free,
// so the result is bitwise identical). Dropout on, so the masks' seeding is covered too.
TEST(Abm, SameSeedSameAdapterOnOneAndTwoRanks) {
  TempDir tmp;
  make_abm_fixture(tmp);
  const std::string args = "--abm-steps 6 --abm-lr 1e-2 --abm-batch 2 --lora-dropout 0.1 --abm-stages 1";
  abm_init(tmp, 1, "one", args);
  abm_init(tmp, 1, "again", args);
  abm_init(tmp, 2, "two", args);
  auto bytes = [&](const std::string& run) {
    std::ifstream in(tmp / (run + "/adapter/adapter_model.safetensors"), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes("one"), bytes("again"));
  EXPECT_EQ(bytes("one"), bytes("two"));
  EXPECT_EQ(read_json(tmp / "one/abm.json")["indices"], read_json(tmp / "two/abm.json")["indices"]);
  EXPECT_EQ(read_json(tmp / "one/abm.json")["loss"], read_json(tmp / "two/abm.json")["loss"]);
  // The "before" report, taken from the teacher pass, counts each sample once: on 2 ranks
  // a rank's pass also covers samples of the other rank's report shard.
  nlohmann::json a = read_json(tmp / "one/abm.json"), b = read_json(tmp / "two/abm.json");
  EXPECT_EQ(a["accuracy_before"], b["accuracy_before"]);
  EXPECT_EQ(a["violation_before"], b["violation_before"]);
  EXPECT_NEAR(a["loss_before"].get<double>(), b["loss_before"].get<double>(),
              1e-12 * a["loss_before"].get<double>());
  // And ABM really changed the adapter: B is no longer zero.
  SafetensorsFile f(tmp / "one/adapter/adapter_model.safetensors");
  EXPECT_GT(f.read("base_model.model.model.layers.2.mlp.gate_proj.lora_B.weight", at::kFloat)
                .abs().max().item<double>(), 0.0);
}
