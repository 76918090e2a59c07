// Inits computed from the weights (issue 18): LoRA-GA against a python3-torch reference
// that takes its own full gradient (tests/ref/init_ref.py lora-ga), with the model
// unchanged at init and the information loss of the reference's tail Σ_{i>2r} σᵢ²; PiSSA against an independent python3-torch
// SVD (tests/ref/init_ref.py, up to the sign of each singular vector), the residual base
// (residual + s·B·A = W, the initial logits are the base's), and the converted export: a
// PiSSA adapter trained against the residual, exported, gives our logits on the ORIGINAL
// base — read back by our importer and by real PEFT 0.7 (tests/ref/peft_check.py).
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "abm/info_loss.h"
#include "abm/svd_init.h"
#include "comm/local_communicator.h"
#include "core/check.h"
#include "core/fs.h"
#include "core/json_text.h"
#include "lora/adapter_set.h"
#include "lora/peft_io.h"
#include "model/llama_model.h"
#include "model/safetensors.h"
#include "test_util.h"

using namespace abm;
using namespace abm::test;

namespace {

const char* kIds = "1,5,7,9,11,13,2,40,41,42,43,96;3,4,9,90,80,70,60,50,40,30,20,10";

at::Tensor logits(const LlamaModel& m) {
  at::NoGradGuard ng;
  return m.forward(at::tensor({1, 5, 7, 9, 11, 13, 2, 40, 41, 42, 43, 96, 3, 4, 9, 90, 80, 70,
                               60, 50, 40, 30, 20, 10}, at::kLong).view({2, 12}));
}

LoraConfig pissa_cfg(int64_t r, double alpha, bool rslora) {
  LoraConfig c;
  c.targets = {"all-linear"};
  c.r = r;
  c.alpha = alpha;
  c.rslora = rslora;
  c.init = "pissa";
  return c;
}

// "Training": moves every A and B by seeded noise (the export must then carry the change).
void perturb(const AdapterSet& set, uint64_t seed) {
  at::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const AdaptedModule& mod : set.modules()) {
    mod.lora->A().add_(at::randn(mod.lora->A().sizes(), gen) * 0.05);
    mod.lora->B().add_(at::randn(mod.lora->B().sizes(), gen) * 0.05);
  }
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

}  // namespace

TEST(Pissa, FactorsMatchTorchSvdAndResidualKeepsTheModel) {
  TempDir tmp;
  const std::string dir = tmp / "m";
  oracle("make_tiny_model.py " + dir);
  for (bool rslora : {false, true}) {
    LlamaModel original = LlamaModel::load(dir), m = LlamaModel::load(dir);
    const LoraConfig c = pissa_cfg(4, 8, rslora);
    AdapterSet set = AdapterSet::attach(m, c);
    const std::string ref_path = tmp / cat("ref", rslora, ".safetensors");
    oracle(cat("init_ref.py pissa ", dir, " ", ref_path, " --r 4 --alpha 8 --targets all-linear",
               rslora ? " --rslora" : ""));
    SafetensorsFile ref(ref_path);
    double worst_ab = 0, worst_res = 0, worst_w = 0;
    for (const AdaptedModule& mod : set.modules()) {
      const at::Tensor A = mod.lora->A().detach(), B = mod.lora->B().detach();
      const at::Tensor rA = ref.read(mod.name + ".lora_A", at::kFloat);
      const at::Tensor rB = ref.read(mod.name + ".lora_B", at::kFloat);
      // One sign per singular vector: row i of A and column i of B flip together.
      const at::Tensor sign = (A * rA).sum(1).sign();  // [r]
      worst_ab = std::max({worst_ab, rel(A * sign.unsqueeze(1), rA), rel(B * sign.unsqueeze(0), rB)});
      EXPECT_TRUE(mod.init.A.equal(A) && mod.init.B.equal(B)) << mod.name;  // A₀, B₀ kept
      const at::Tensor W = projection(original.layers()[mod.layer], mod.proj).weight;
      const at::Tensor res = mod.linear->weight;
      worst_res = std::max(worst_res, rel(res, ref.read(mod.name + ".residual", at::kFloat)));
      worst_w = std::max(worst_w, rel(res + c.scale() * B.mm(A), W));
    }
    std::printf("rslora=%d: A,B vs torch SVD max rel %.3g; residual vs torch %.3g; "
                "residual + s*B*A vs W %.3g\n", rslora, worst_ab, worst_res, worst_w);
    EXPECT_LE(worst_ab, 1e-4);   // SVD of different LAPACK builds: ~1e-6 typical
    EXPECT_LE(worst_res, 1e-5);
    EXPECT_LE(worst_w, 1e-5);
    const double d = max_abs_diff(logits(m), logits(original));
    std::printf("  initial logits vs base max|diff| %.3g\n", d);
    EXPECT_LE(d, 1e-5);
  }
}

TEST(Pissa, SameBitsWhateverTheThreadCount) {
  TempDir tmp;
  const std::string dir = tmp / "m";
  oracle("make_tiny_model.py " + dir + " --hidden 120 --intermediate 320 --heads 6");
  const int before = at::get_num_threads();
  std::vector<at::Tensor> runs;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    LlamaModel m = LlamaModel::load(dir);
    AdapterSet set = AdapterSet::attach(m, pissa_cfg(8, 16, false));
    std::vector<at::Tensor> parts;
    for (const AdaptedModule& mod : set.modules())
      parts.insert(parts.end(), {mod.lora->A().detach().flatten(), mod.lora->B().detach().flatten(),
                                 mod.linear->weight.flatten()});
    runs.push_back(at::cat(parts));
  }
  at::set_num_threads(before);
  EXPECT_TRUE(runs[0].equal(runs[1]));
}

// "Training" moves A and B; the export must carry the whole change relative to the
// original base: ΔW = s(B'A' − B₀A₀), rank 2r.
TEST(Pissa, ConvertedExportGivesOurLogitsOnTheOriginalBase) {
  TempDir tmp;
  const std::string dir = tmp / "m";
  oracle("make_tiny_model.py " + dir);
  for (bool rslora : {false, true}) {
    LlamaModel m = LlamaModel::load(dir);
    AdapterSet set = AdapterSet::attach(m, pissa_cfg(4, 8, rslora));
    perturb(set, 7);
    const at::Tensor ours = logits(m);
    const std::string out = tmp / cat("adapter", rslora);
    export_peft(set, dir, out);
    PeftConfigFile pc = read_peft_config(out);
    EXPECT_EQ(pc.config.r, 8);
    EXPECT_NEAR(pc.config.scale(), set.config().scale(), 1e-12);
    LlamaModel fresh = LlamaModel::load(dir);  // the original base
    PeftAdapter back = import_peft(out, fresh);
    const double d_ours = max_abs_diff(logits(fresh), ours);
    std::printf("rslora=%d: re-imported rank-2r export on the original base vs ours max|diff| "
                "%.3g (training moved the logits by %.3g)\n", rslora, d_ours,
                max_abs_diff(ours, logits(LlamaModel::load(dir))));
    EXPECT_LE(d_ours, 1e-4);
    const std::string py = hf_python();
    if (py.empty()) {
      std::printf("  real PEFT: skipped (no venv; launch/oracle_venv.sh)\n");
      continue;
    }
    const std::string peft_logits = tmp / cat("peft", rslora, ".safetensors");
    RunResult r = run(cat(py, " ", ABM_SOURCE_DIR, "/tests/ref/peft_check.py logits ", dir, " ",
                          out, " --ids '", kIds, "' --out ", peft_logits));
    ASSERT_EQ(r.status, 0) << r.output;
    const double d = max_abs_diff(ours, SafetensorsFile(peft_logits).read("logits", at::kFloat));
    std::printf("  real PEFT 0.7 (PeftModel.from_pretrained on the original base) vs ours "
                "max|diff| %.3g\n", d);
    EXPECT_LE(d, 1e-4);
  }
}

TEST(Pissa, ImportRefusesAnUnconvertedPissaAdapter) {
  TempDir tmp;
  const std::string dir = tmp / "m";
  oracle("make_tiny_model.py " + dir);
  LlamaModel m = LlamaModel::load(dir);
  const std::string out = tmp / "a";
  {
    LlamaModel other = LlamaModel::load(dir);
    LoraConfig c = pissa_cfg(4, 8, false);
    c.init = "kaiming";
    export_peft(AdapterSet::attach(other, c), dir, out);
  }
  std::string text = read_small_file(out + "/adapter_config.json");
  const size_t at = text.find("\"init_lora_weights\": true");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 25, "\"init_lora_weights\": \"pissa\"");
  write_text_atomic(out + "/adapter_config.json", text);
  try {
    import_peft(out, m);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("residual base"), std::string::npos) << e.what();
  }
}

// LoRA-GA: G from our model on four token rows vs the reference's own autograd G
// through the hand-written forward; A, B up to one sign per singular vector; the base
// offset so the logits are the base's; the information loss is exactly the tail
// Σ_{i>2r} σᵢ²/‖G‖² of the reference's G; the converted export (rank 2r) on the original
// base gives our logits, also in real PEFT.
TEST(LoraGa, FactorsMatchTheReferenceGradientSvdAndInfoLossIsTheTail) {
  TempDir tmp;
  const std::string dir = tmp / "m";
  oracle("make_tiny_model.py " + dir);
  const std::string rows_path = tmp / "rows.jsonl";
  write_token_rows(rows_path, 6, 0, 12);
  DataOptions o;
  o.path = rows_path;
  const Dataset d = load_datasets(o).train;
  const std::vector<int64_t> rows = {3, 0, 5, 1};
  LocalCommunicator comm;
  LlamaModel original = LlamaModel::load(dir), m = LlamaModel::load(dir);
  LoraConfig c = pissa_cfg(4, 8, false);
  c.init = "lora-ga";
  AdapterSet set = attach_lora_ga(m, c, d, rows, 2, comm);
  const std::string ref_path = tmp / "ref.safetensors";
  oracle(cat("init_ref.py lora-ga ", dir, " ", ref_path, " --r 4 --alpha 8 --targets all-linear",
             " --data ", rows_path, " --rows 3,0,5,1"));
  SafetensorsFile ref(ref_path);
  double worst_ab = 0, worst_res = 0;
  for (const AdaptedModule& mod : set.modules()) {
    const at::Tensor A = mod.lora->A().detach(), B = mod.lora->B().detach();
    const at::Tensor rA = ref.read(mod.name + ".lora_A", at::kFloat);
    const at::Tensor rB = ref.read(mod.name + ".lora_B", at::kFloat);
    // A's rows are v_1..v_r, B's columns u_{r+1}..u_2r: every one has its own sign.
    const at::Tensor sa = (A * rA).sum(1).sign().unsqueeze(1), sb = (B * rB).sum(0).sign();
    worst_ab = std::max({worst_ab, rel(A * sa, rA), rel(B * sb, rB)});
    // The offset base W − s·B₀A₀ with the reference's factors in our signs.
    const at::Tensor W = projection(original.layers()[mod.layer], mod.proj).weight;
    worst_res = std::max(worst_res, rel(mod.linear->weight, W - c.scale() * (rB * sb).mm(rA * sa)));
  }
  const double d_logits = max_abs_diff(logits(m), logits(original));
  const double ours = probe_information_loss(m, set, d, rows, 2, comm).total.relative();
  const double theirs = ref.read("info_loss", at::kDouble).item<double>();
  std::printf("lora-ga: A,B vs reference max rel %.3g; offset base %.3g; initial logits vs base "
              "max|diff| %.3g; information loss %.6f vs the reference's tail %.6f\n",
              worst_ab, worst_res, d_logits, ours, theirs);
  EXPECT_LE(worst_ab, 1e-3);  // two gradients (float32 sums in other orders), then SVDs
  EXPECT_LE(worst_res, 1e-4);  // inherits the factors' differences
  EXPECT_LE(d_logits, 1e-5);
  EXPECT_NEAR(ours, theirs, 1e-4);
  EXPECT_GT(theirs, 0);  // G of rank > 2r: the bound is not trivially 0

  const at::Tensor start = logits(m);
  perturb(set, 9);  // the export must carry s(B'A' − B₀A₀)
  const at::Tensor trained = logits(m);
  const std::string out = tmp / "adapter";
  export_peft(set, dir, out);
  LlamaModel fresh = LlamaModel::load(dir);
  PeftAdapter back = import_peft(out, fresh);
  const double d_back = max_abs_diff(logits(fresh), trained);
  std::printf("  converted export on the original base vs ours max|diff| %.3g (moved %.3g)\n",
              d_back, max_abs_diff(trained, start));
  EXPECT_LE(d_back, 1e-4);
  const std::string py = hf_python();
  if (py.empty()) {
    std::printf("  real PEFT: skipped (no venv; launch/oracle_venv.sh)\n");
    return;
  }
  const std::string peft_logits = tmp / "peft.safetensors";
  RunResult r = run(cat(py, " ", ABM_SOURCE_DIR, "/tests/ref/peft_check.py logits ", dir, " ", out,
                        " --ids '", kIds, "' --out ", peft_logits));
  ASSERT_EQ(r.status, 0) << r.output;
  const double dp = max_abs_diff(trained, SafetensorsFile(peft_logits).read("logits", at::kFloat));
  std::printf("  real PEFT 0.7 on the original base vs ours max|diff| %.3g\n", dp);
  EXPECT_LE(dp, 1e-4);
}
