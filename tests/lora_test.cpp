// LoRA (src/lora) against independent references: exact identities (B = 0 is the base
// model, merged = unmerged), a hand-written torch LLaMA + LoRA for gradients
// (tests/ref/lora_ref.py), and real PEFT 0.7.1 for the export format, loading our
// adapters and reading its own (tests/ref/peft_check.py, skipped without the venv).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "lora/adapter_set.h"
#include "lora/init.h"
#include "lora/lora_config.h"
#include "lora/lora_linear.h"
#include "lora/peft_io.h"
#include "model/llama_model.h"
#include "test_util.h"

using namespace abm;
using namespace abm::test;

namespace {

const char* kNoVenv = "no transformers/peft venv (run launch/oracle_venv.sh build/oracle-venv)";
const char* kIds = "1,5,7,9,11,13,2,40,41,42,43,96;3,4,9,90,80,70,60,50,40,30,20,10";

at::Tensor ids_tensor() {
  return at::tensor({1, 5, 7, 9, 11, 13, 2, 40, 41, 42, 43, 96, 3, 4, 9, 90, 80, 70, 60, 50,
                     40, 30, 20, 10}, at::kLong).view({2, 12});
}

// The tiny model of make_tiny_model.py: hidden 60, q/o [60,60], k/v [20,60], gate/up
// [100,60], down [60,100], 3 layers, vocab 97.
std::string tiny(const TempDir& tmp, const std::string& name = "m", const std::string& args = "") {
  std::string dir = tmp / name;
  oracle("make_tiny_model.py " + dir + " " + args);
  return dir;
}

LoraConfig make_cfg(std::vector<std::string> targets, int64_t r = 4, double alpha = 8) {
  LoraConfig c;
  c.targets = std::move(targets);
  c.r = r;
  c.alpha = alpha;
  c.seed = 1234;
  return c;
}

// B ~ N(0, 0.05) (seeded), so the adapters change the logits.
void randomize_b(AdapterSet& set, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard ng;
  for (auto& m : set.modules()) m.lora->B().normal_(0.0, 0.05, gen);
}

at::Tensor logits(const LlamaModel& m) {
  at::NoGradGuard ng;
  return m.forward(ids_tensor());
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an abm::Error";
  return "";
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool no_adapters(const LlamaModel& m) {
  for (auto& l : m.layers())
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      if (p->adapter) return false;
  return true;
}

}  // namespace

TEST(LoraConfig, ScaleAndTargets) {
  LoraConfig c = make_cfg({"v_proj", "all-linear", "q_proj"}, 8, 16);
  EXPECT_DOUBLE_EQ(c.scale(), 2.0);
  c.rslora = true;
  EXPECT_DOUBLE_EQ(c.scale(), 16.0 / std::sqrt(8.0));
  EXPECT_EQ(c.target_modules(), lora_module_kinds());
  EXPECT_EQ(make_cfg({"down_proj", "q_proj", "q_proj"}).target_modules(),
            (std::vector<std::string>{"q_proj", "down_proj"}));
}

TEST(LoraConfig, BadValuesAreNamed) {
  std::string e = error_of([] { make_cfg({"q_proj", "qq_proj"}).validate(); });
  EXPECT_NE(e.find("\"qq_proj\""), std::string::npos) << e;
  EXPECT_NE(e.find("valid: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, "
                   "all-linear"), std::string::npos) << e;
  EXPECT_NE(error_of([] { make_cfg({"q_proj"}, 0).validate(); }).find("r must be positive"),
            std::string::npos);
  for (double d : {1.0, -0.1}) {
    LoraConfig c = make_cfg({"q_proj"});
    c.dropout = d;
    EXPECT_NE(error_of([&] { c.validate(); }).find("dropout must be in [0, 1)"), std::string::npos);
  }
  LoraConfig c = make_cfg({"q_proj"});
  c.init = "orthogonal";
  EXPECT_NE(error_of([&] { c.validate(); }).find("orthogonal"), std::string::npos);
}

// r above a module's smaller dimension: the error names that module; nothing is attached.
TEST(LoraConfig, RankLargerThanModuleIsRefused) {
  TempDir tmp;
  LlamaModel m = LlamaModel::load(tiny(tmp));
  std::string e = error_of([&] { AdapterSet::attach(m, make_cfg({"q_proj", "k_proj"}, 32)); });
  EXPECT_NE(e.find("r=32 is larger than k_proj's smaller dimension 20"), std::string::npos) << e;
  EXPECT_TRUE(no_adapters(m));
  EXPECT_NO_THROW(make_cfg({"q_proj", "down_proj"}, 60).validate_for(m.config()));
  e = error_of([&] { AdapterSet::attach(m, make_cfg({"nope_proj"})); });
  EXPECT_NE(e.find("\"nope_proj\" does not exist"), std::string::npos) << e;
}

// A depends only on (seed, module name): not on the other targets, not on the layer range.
TEST(LoraInit, SeededPerModuleName) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  LlamaModel whole = LlamaModel::load(dir);
  AdapterSet one = AdapterSet::attach(whole, make_cfg({"q_proj"}, 8));
  LoadOptions lo;
  lo.first = 1;
  LlamaModel part = LlamaModel::load(dir, lo);
  AdapterSet all = AdapterSet::attach(part, make_cfg({"all-linear"}, 8));
  for (int64_t i : {1, 2}) {
    std::string n = lora_module_name(i, "q_proj");
    ASSERT_TRUE(one.find(n) && all.find(n)) << n;
    EXPECT_TRUE(at::equal(one.find(n)->A(), all.find(n)->A())) << n;
  }
  EXPECT_EQ(all.modules().front().name, "model.layers.1.self_attn.q_proj");
  EXPECT_FALSE(at::equal(one.find(lora_module_name(1, "q_proj"))->A(),
                         one.find(lora_module_name(2, "q_proj"))->A()));
  LoraWeights a = init_lora("kaiming", 1, "x", 8, 60, 60);
  LoraWeights b = init_lora("kaiming", 2, "x", 8, 60, 60);
  EXPECT_FALSE(at::equal(a.A, b.A));
  EXPECT_TRUE(at::equal(a.A, init_lora("kaiming", 1, "x", 8, 60, 60).A));
}

// kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); gaussian = N(0, 1/r); B = 0.
TEST(LoraInit, Distributions) {
  for (int64_t in : {60, 100}) {
    LoraWeights w = init_lora("kaiming", 0, "model.layers.0.mlp.down_proj", 16, in, 30);
    double bound = 1.0 / std::sqrt(double(in));
    double amax = w.A.abs().max().item<double>();
    EXPECT_LE(amax, bound);
    EXPECT_GE(amax, 0.95 * bound);
    EXPECT_NEAR(w.A.mean().item<double>(), 0.0, 0.1 * bound);
    EXPECT_EQ(w.A.sizes(), at::IntArrayRef({16, in}));
    EXPECT_EQ(w.B.sizes(), at::IntArrayRef({30, 16}));
    EXPECT_EQ(w.B.count_nonzero().item<int64_t>(), 0);
    EXPECT_EQ(w.A.scalar_type(), at::kFloat);
  }
  LoraWeights g = init_lora("gaussian", 0, "m", 8, 500, 10);
  EXPECT_NEAR(g.A.std().item<double>(), 1.0 / 8, 0.1 / 8);
  EXPECT_EQ(g.B.count_nonzero().item<int64_t>(), 0);
}

// Fresh adapters (B = 0) leave the logits bitwise unchanged, in fp32 and in bf16.
TEST(LoraLinear, FreshAdapterIsBaseModelExactly) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    LoadOptions lo;
    lo.dtype = dt;
    LlamaModel m = LlamaModel::load(dir, lo);
    at::Tensor base = logits(m);
    AdapterSet set = AdapterSet::attach(m, make_cfg({"all-linear"}, 8));
    EXPECT_EQ(set.modules().size(), 21u);
    EXPECT_TRUE(at::equal(logits(m), base)) << dt;
  }
}

TEST(LoraLinear, TeacherModeIsBaseModel) {
  TempDir tmp;
  LlamaModel m = LlamaModel::load(tiny(tmp));
  at::Tensor base = logits(m);
  AdapterSet set = AdapterSet::attach(m, make_cfg({"all-linear"}));
  randomize_b(set, 1);
  at::Tensor adapted = logits(m);
  EXPECT_GT(max_abs_diff(adapted, base), 1e-2);
  set.set_enabled(false);
  EXPECT_TRUE(at::equal(logits(m), base));
  set.set_enabled(true);
  EXPECT_TRUE(at::equal(logits(m), adapted));
  set.detach();
  EXPECT_TRUE(no_adapters(m));
  EXPECT_TRUE(at::equal(logits(m), base));
}

// Merged weights give the adapter's logits; unmerge restores the weights.
TEST(LoraLinear, MergeEqualsAdapterForward) {
  TempDir tmp;
  LlamaModel m = LlamaModel::load(tiny(tmp));
  std::vector<at::Tensor> before;
  for (auto& [n, w] : m.named_weights()) before.push_back(w.clone());
  AdapterSet set = AdapterSet::attach(m, make_cfg({"all-linear"}, 8, 16));
  randomize_b(set, 2);
  at::Tensor adapted = logits(m);
  set.merge();
  EXPECT_TRUE(set.merged());
  double d = max_abs_diff(logits(m), adapted);
  std::printf("merged vs adapter forward max|diff| = %.3g\n", d);
  EXPECT_LE(d, 1e-5);
  EXPECT_GT(max_abs_diff(m.layers()[0].q.weight, before[2]), 1e-3);  // really merged
  EXPECT_NE(error_of([&] { set.set_enabled(false); }).find("unmerge"), std::string::npos);
  set.unmerge();
  auto after = m.named_weights();
  double w = 0;
  for (size_t i = 0; i < after.size(); ++i)
    w = std::max(w, max_abs_diff(after[i].second, before[i]));
  std::printf("unmerged weights max|diff| = %.3g\n", w);
  EXPECT_LE(w, 1e-6);
  EXPECT_LE(max_abs_diff(logits(m), adapted), 1e-5);
}

// Dropout = nn.Dropout on the adapter input: zero with probability p, else x/(1-p); only
// in train mode; reproducible from its seed or saved state.
TEST(LoraLinear, Dropout) {
  const int64_t n = 4;
  at::Tensor eye = at::eye(n);
  LoraLinear l(eye, eye, 1.0, 0.3, 7);  // delta = dropout(x)
  at::Tensor x = at::ones({2000, n}), zero = at::zeros({2000, n});
  EXPECT_TRUE(at::equal(l.forward(x, zero), x));  // eval mode: no dropout
  l.set_train(true);
  at::Tensor st = l.dropout_state();
  at::Tensor y = l.forward(x, zero);
  double dropped = y.eq(0).to(at::kFloat).mean().item<double>();
  EXPECT_NEAR(dropped, 0.3, 0.02);
  EXPECT_LE(max_abs_diff(y.masked_select(y.ne(0)), at::full({1}, 1.0 / 0.7)), 1e-6);
  EXPECT_FALSE(at::equal(l.forward(x, zero), y));  // the stream moves on
  l.set_dropout_state(st);
  EXPECT_TRUE(at::equal(l.forward(x, zero), y));
  l.reseed_dropout(7);
  EXPECT_TRUE(at::equal(l.forward(x, zero), y));

  // In a model: train-mode logits differ and are reproduced by reseeding the set.
  TempDir tmp;
  LlamaModel m = LlamaModel::load(tiny(tmp));
  LoraConfig c = make_cfg({"q_proj", "v_proj"});
  c.dropout = 0.2;
  AdapterSet set = AdapterSet::attach(m, c);
  randomize_b(set, 3);
  at::Tensor eval = logits(m);
  set.set_train(true);
  set.reseed_dropout(5);
  at::Tensor t1 = logits(m);
  set.reseed_dropout(5);
  EXPECT_TRUE(at::equal(logits(m), t1));
  EXPECT_GT(max_abs_diff(t1, eval), 1e-4);
  set.set_train(false);
  EXPECT_TRUE(at::equal(logits(m), eval));
}

TEST(AdapterSet, OrderNamesAndParameters) {
  TempDir tmp;
  LlamaModel m = LlamaModel::load(tiny(tmp));
  AdapterSet set = AdapterSet::attach(m, make_cfg({"down_proj", "q_proj", "k_proj"}, 4));
  std::vector<std::string> names;
  for (auto& mod : set.modules()) names.push_back(mod.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                       "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj",
                       "model.layers.1.self_attn.k_proj", "model.layers.1.mlp.down_proj",
                       "model.layers.2.self_attn.q_proj", "model.layers.2.self_attn.k_proj",
                       "model.layers.2.mlp.down_proj"}));
  EXPECT_EQ(set.num_params(), 3 * 4 * ((60 + 60) + (60 + 20) + (100 + 60)));
  auto params = set.parameters();
  auto named = set.named_tensors();
  ASSERT_EQ(params.size(), 18u);
  ASSERT_EQ(named.size(), 18u);
  EXPECT_EQ(named[5].first, "model.layers.0.mlp.down_proj.lora_B");
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i].is_same(named[i].second));
    EXPECT_TRUE(params[i].requires_grad());
    EXPECT_EQ(params[i].scalar_type(), at::kFloat);
  }
  // Loading keeps tensor identity (optimizer state stays attached to the same tensors).
  std::map<std::string, at::Tensor> values;
  for (auto& [n, t] : named) values[n] = at::full_like(t, 0.5);
  set.load_named_tensors(values, "test");
  EXPECT_TRUE(params[1].is_same(set.parameters()[1]));
  EXPECT_EQ(params[1].detach().eq(0.5).all().item<bool>(), true);
  values.erase(values.begin());
  EXPECT_NE(error_of([&] { set.load_named_tensors(values, "ckpt.h5"); }).find("ckpt.h5: missing"),
            std::string::npos);
  // One adapter per projection.
  std::string e = error_of([&] { AdapterSet::attach(m, make_cfg({"q_proj"})); });
  EXPECT_NE(e.find("model.layers.0.self_attn.q_proj already has an adapter"), std::string::npos)
      << e;
}

// Gradients of A and B against the hand-written torch LLaMA + LoRA, for a cross-entropy
// loss and a sum of logits; the adapter reaches the reference as our PEFT export.
TEST(LoraGrad, MatchesTorchReference) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  for (std::string loss : {"ce", "sum"}) {
    LlamaModel m = LlamaModel::load(dir);
    LoraConfig c = make_cfg({"all-linear"}, 4, 8);
    c.rslora = loss == "sum";
    AdapterSet set = AdapterSet::attach(m, c);
    randomize_b(set, 4);
    std::string adapter = tmp / ("adapter-" + loss), out = tmp / ("ref-" + loss + ".safetensors");
    export_peft(set, dir, adapter);
    oracle("lora_ref.py " + dir + " " + adapter + " --ids '" + kIds + "' --out " + out +
           " --loss " + loss);
    SafetensorsFile ref(out);

    at::Tensor ids = ids_tensor();
    at::Tensor lg = m.forward(ids);
    at::Tensor l = loss == "ce" ? at::cross_entropy_loss(lg.narrow(1, 0, 11).reshape({-1, 97}),
                                                         ids.narrow(1, 1, 11).reshape({-1}))
                                : lg.sum();
    l.backward();
    double dl = max_abs_diff(lg, ref.read("logits", at::kFloat));
    double worst = 0;
    std::string worst_name;
    for (auto& [name, t] : set.named_tensors()) {
      at::Tensor g_ref = ref.read("grad:base_model.model." + name + ".weight", at::kFloat);
      ASSERT_TRUE(t.grad().defined()) << name;
      double rel = max_abs_diff(t.grad(), g_ref) / g_ref.abs().max().item<double>();
      if (rel > worst) worst = rel, worst_name = name;
    }
    std::printf("%s: logits max|diff| %.3g, loss %.8g vs %.8g, worst grad rel diff %.3g (%s)\n",
                loss.c_str(), dl, l.item<double>(), ref.read("loss", at::kFloat).item<double>(),
                worst, worst_name.c_str());
    EXPECT_LE(dl, 1e-4);
    EXPECT_LE(worst, 1e-5) << worst_name;
  }
}

// Export -> import -> export gives the same bytes; import restores A, B and the config.
TEST(PeftIo, RoundTripIsByteIdentical) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  LlamaModel m = LlamaModel::load(dir);
  LoraConfig c = make_cfg({"up_proj", "q_proj", "o_proj"}, 6, 12.5);
  c.dropout = 0.05;
  c.init = "gaussian";
  AdapterSet set = AdapterSet::attach(m, c);
  randomize_b(set, 5);
  export_peft(set, dir, tmp / "a");

  LlamaModel m2 = LlamaModel::load(dir);
  PeftAdapter back = import_peft(tmp / "a", m2);
  EXPECT_EQ(back.base_model, dir);
  EXPECT_EQ(back.config.r, 6);
  EXPECT_EQ(back.config.alpha, 12.5);
  EXPECT_EQ(back.config.dropout, 0.05);
  EXPECT_EQ(back.config.init, "gaussian");
  EXPECT_EQ(back.config.target_modules(),
            (std::vector<std::string>{"q_proj", "o_proj", "up_proj"}));
  auto a = set.named_tensors(), b = back.adapters.named_tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
  EXPECT_TRUE(at::equal(logits(m2), logits(m)));
  export_peft(back.adapters, dir, tmp / "b");
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
    EXPECT_EQ(read_bytes(tmp / "a" + "/" + f), read_bytes(tmp / "b" + "/" + f)) << f;

  // Import into a layer range loads only its layers, with the same values.
  LoadOptions lo;
  lo.first = 2;
  LlamaModel part = LlamaModel::load(dir, lo);
  PeftAdapter p = import_peft(tmp / "a", part);
  ASSERT_EQ(p.adapters.modules().size(), 3u);
  EXPECT_EQ(p.adapters.modules()[0].name, "model.layers.2.self_attn.q_proj");
  EXPECT_TRUE(at::equal(p.adapters.modules()[2].lora->B(),
                        set.find("model.layers.2.mlp.up_proj")->B()));
  EXPECT_NE(error_of([&] { export_peft(p.adapters, dir, tmp / "c"); }).find("all 3 layers"),
            std::string::npos);
}

// Our files against the ones real PEFT writes for the same settings.
TEST(PeftIo, ExportMatchesRealPeft) {
  std::string py = hf_python();
  if (py.empty()) GTEST_SKIP() << kNoVenv;
  TempDir tmp;
  std::string dir = tiny(tmp);
  struct Case {
    std::vector<std::string> targets;
    int64_t r;
    double alpha, dropout;
    std::string init;
    bool rslora;
  };
  std::vector<Case> cases = {{{"q_proj", "v_proj"}, 8, 16, 0.0, "kaiming", false},
                             {{"all-linear"}, 4, 32, 0.1, "gaussian", false},
                             {{"down_proj", "o_proj", "q_proj"}, 6, 12.5, 0.05, "kaiming", true}};
  int i = 0;
  for (auto& k : cases) {
    LlamaModel m = LlamaModel::load(dir);
    LoraConfig c = make_cfg(k.targets, k.r, k.alpha);
    c.dropout = k.dropout;
    c.init = k.init;
    c.rslora = k.rslora;
    std::string ours = tmp / cat("ours", i), theirs = tmp / cat("theirs", i++);
    export_peft(AdapterSet::attach(m, c), dir, ours);
    std::string targets;
    for (auto& t : k.targets) targets += (targets.empty() ? "" : ",") + t;
    std::string script = cat(ABM_SOURCE_DIR, "/tests/ref/peft_check.py ");
    RunResult s = run(cat(py, " ", script, "save ", dir, " ", theirs, " --r ", k.r, " --alpha ",
                          k.alpha, " --dropout ", k.dropout, " --targets ", targets, " --init ",
                          k.init, k.rslora ? " --rslora" : ""));
    ASSERT_EQ(s.status, 0) << s.output;
    RunResult r = run(cat(py, " ", script, "compare ", ours, " ", theirs));
    std::printf("%s", r.output.c_str());
    EXPECT_EQ(r.status, 0) << r.output;
  }
}

// Real PEFT loads our exported adapter (non-zero B) and computes our logits.
TEST(PeftIo, RealPeftLoadsOurAdapter) {
  std::string py = hf_python();
  if (py.empty()) GTEST_SKIP() << kNoVenv;
  TempDir tmp;
  std::string dir = tiny(tmp);
  for (bool rslora : {false, true}) {
    LlamaModel m = LlamaModel::load(dir);
    LoraConfig c = make_cfg({"all-linear"}, 8, 16);
    c.rslora = rslora;
    AdapterSet set = AdapterSet::attach(m, c);
    randomize_b(set, 6);
    std::string adapter = tmp / cat("a", rslora), out = tmp / cat("l", rslora, ".safetensors");
    export_peft(set, dir, adapter);
    RunResult r = run(cat(py, " ", ABM_SOURCE_DIR, "/tests/ref/peft_check.py logits ", dir, " ",
                          adapter, " --ids '", kIds, "' --out ", out));
    ASSERT_EQ(r.status, 0) << r.output;
    at::Tensor ours = logits(m), theirs = SafetensorsFile(out).read("logits", at::kFloat);
    double d = max_abs_diff(ours, theirs);
    std::printf("rslora=%d: ours vs PeftModel.from_pretrained max|diff| = %.3g (adapter moves "
                "logits by %.3g)\n", rslora, d, max_abs_diff(ours, logits(LlamaModel::load(dir))));
    EXPECT_LE(d, 1e-4);
  }
}

// We read what real PEFT wrote (random B) and compute PEFT's logits.
TEST(PeftIo, ImportsRealPeftAdapter) {
  std::string py = hf_python();
  if (py.empty()) GTEST_SKIP() << kNoVenv;
  TempDir tmp;
  std::string dir = tiny(tmp);
  std::string script = cat(py, " ", ABM_SOURCE_DIR, "/tests/ref/peft_check.py ");
  RunResult s = run(script + "save " + dir + " " + (tmp / "peft") +
                    " --r 4 --alpha 8 --targets q_proj,k_proj,gate_proj,down_proj --random-b 3");
  ASSERT_EQ(s.status, 0) << s.output;
  RunResult r = run(script + "logits " + dir + " " + (tmp / "peft") + " --ids '" + kIds +
                    "' --out " + (tmp / "l.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  LlamaModel m = LlamaModel::load(dir);
  PeftAdapter a = import_peft(tmp / "peft", m);
  EXPECT_EQ(a.config.target_modules(),
            (std::vector<std::string>{"q_proj", "k_proj", "gate_proj", "down_proj"}));
  EXPECT_EQ(a.config.r, 4);
  EXPECT_DOUBLE_EQ(a.config.scale(), 2.0);
  at::Tensor theirs = SafetensorsFile(tmp / "l.safetensors").read("logits", at::kFloat);
  double d = max_abs_diff(logits(m), theirs);
  double moved = max_abs_diff(theirs, logits(LlamaModel::load(dir)));
  std::printf("PEFT-written adapter: ours vs PEFT max|diff| = %.3g (adapter moves logits by "
              "%.3g)\n", d, moved);
  EXPECT_LE(d, 1e-4);
  EXPECT_GT(moved, 1e-2);
}

// A full HF model with the adapter folded in; tokenizer files come along.
TEST(PeftIo, MergeToModelDir) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  { std::ofstream(dir + "/tokenizer.model") << "not really a tokenizer"; }
  LlamaModel m = LlamaModel::load(dir);
  AdapterSet set = AdapterSet::attach(m, make_cfg({"all-linear"}, 8, 16));
  randomize_b(set, 7);
  export_peft(set, dir, tmp / "a");
  merge_to_model_dir(dir, tmp / "a", tmp / "merged", at::kFloat);
  at::Tensor merged = logits(LlamaModel::load(tmp / "merged"));
  double d = max_abs_diff(merged, logits(m));
  std::printf("merged model dir vs adapter forward max|diff| = %.3g\n", d);
  EXPECT_LE(d, 1e-5);
  EXPECT_EQ(read_bytes(tmp / "merged/tokenizer.model"), "not really a tokenizer");
  // The in-memory form leaves the model as it was.
  merge_to_model_dir(m, set, tmp / "merged2", at::kFloat);
  EXPECT_FALSE(set.merged());
  EXPECT_LE(max_abs_diff(logits(LlamaModel::load(tmp / "merged2")), merged), 1e-6);
}

// Other forms PEFT writes: target_modules as a regex string (0.7), use_rslora (>= 0.8).
TEST(PeftIo, ReadsOtherPeftForms) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  LlamaModel m = LlamaModel::load(dir);
  AdapterSet set = AdapterSet::attach(m, make_cfg({"q_proj", "v_proj"}, 4, 8));
  randomize_b(set, 8);
  export_peft(set, dir, tmp / "a");
  auto edited = [&](const std::string& name, const std::string& field, nlohmann::json v) {
    std::string d = tmp / name;
    run("cp -r " + (tmp / "a") + " " + d);
    nlohmann::json j = nlohmann::json::parse(read_bytes(d + "/adapter_config.json"));
    j[field] = v;
    std::ofstream(d + "/adapter_config.json") << j.dump(2);
    return d;
  };
  LlamaModel m2 = LlamaModel::load(dir);
  PeftAdapter r = import_peft(edited("regex", "target_modules", R"(.*\.(q|v)_proj)"), m2);
  EXPECT_EQ(r.config.target_modules(), (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(at::equal(logits(m2), logits(m)));
  LlamaModel m3 = LlamaModel::load(dir);
  std::string only_q = edited("regex2", "target_modules", ".*q_proj");
  std::string e = error_of([&] { import_peft(only_q, m3); });
  EXPECT_NE(e.find("v_proj.lora_A.weight is not selected by target_modules \".*q_proj\""),
            std::string::npos) << e;

  PeftAdapter rs = import_peft(edited("rslora", "use_rslora", true), m3);
  EXPECT_TRUE(rs.config.rslora);
  EXPECT_DOUBLE_EQ(rs.adapters.modules()[0].lora->scale(), 8 / 2.0);  // alpha / sqrt(4)
  // Exported again, the rsLoRA scale is folded into lora_alpha: 8 * sqrt(4) = 16.
  export_peft(rs.adapters, dir, tmp / "folded");
  auto j = nlohmann::json::parse(read_bytes(tmp / "folded/adapter_config.json"));
  EXPECT_EQ(j["lora_alpha"].dump(), "16");
  EXPECT_FALSE(j.contains("use_rslora"));
}

TEST(PeftIo, BadInput) {
  TempDir tmp;
  std::string dir = tiny(tmp);
  std::string good = tmp / "good";
  {
    LlamaModel m = LlamaModel::load(dir);
    export_peft(AdapterSet::attach(m, make_cfg({"q_proj", "v_proj"})), dir, good);
  }
  auto expect_error = [&](const std::string& adapter, const std::string& model_dir,
                          const std::string& needle) {
    LlamaModel m = LlamaModel::load(model_dir);
    std::string e = error_of([&] { import_peft(adapter, m); });
    std::printf("  %s\n", e.c_str());
    EXPECT_NE(e.find(needle), std::string::npos) << "error: " << e << "\nexpected: " << needle;
    EXPECT_TRUE(no_adapters(m)) << needle;
  };
  // A copy of the good adapter with its tensors edited by `edit`.
  auto variant = [&](const std::string& name, auto edit) {
    std::string d = tmp / name;
    run("mkdir -p " + d + " && cp " + good + "/adapter_config.json " + d);
    SafetensorsFile f(good + "/adapter_model.safetensors");
    std::map<std::string, at::Tensor> t;
    for (auto& n : f.names()) t[n] = f.read(n, at::kFloat);
    edit(t);
    save_safetensors(d + "/adapter_model.safetensors", NamedTensors(t.begin(), t.end()),
                     {{"format", "pt"}});
    return d;
  };
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

  expect_error(tmp / "nowhere", dir, "no such adapter directory");
  run("mkdir -p " + (tmp / "empty"));
  expect_error(tmp / "empty", dir, "adapter_config.json: missing");
  run("mkdir -p " + (tmp / "nof") + " && cp " + good + "/adapter_config.json " + (tmp / "nof"));
  expect_error(tmp / "nof", dir, "nof/adapter_model.safetensors: missing");
  expect_error(variant("shape", [&](auto& t) { t[q0] = t[q0].t().contiguous(); }), dir,
               q0 + " has shape [60, 4], expected [4, 60]");
  expect_error(variant("unknown", [&](auto& t) {
                 t["base_model.model.model.layers.0.self_attn.qq_proj.lora_A.weight"] = t[q0];
               }), dir, "unexpected tensor \"base_model.model.model.layers.0.self_attn.qq_proj");
  expect_error(variant("untargeted", [&](auto& t) {
                 t["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"] = t[q0];
               }), dir, "lora_A.weight adapts up_proj, which target_modules does not list");
  expect_error(variant("partial", [&](auto& t) { t.erase(q0); }), dir, "missing tensor " + q0);
  // Other base models: fewer layers, other widths.
  expect_error(good, tiny(tmp, "two", "--layers 2"),
               "is for layer 2, but the base model has 2 layers");
  expect_error(good, tiny(tmp, "wide", "--hidden 80 --heads 8"),
               q0 + " has shape [4, 60], expected [4, 80]");
  // PEFT features we do not implement.
  std::string bias = tmp / "bias";
  run("cp -r " + good + " " + bias + " && sed -i 's/\"bias\": \"none\"/\"bias\": \"all\"/' " +
      bias + "/adapter_config.json");
  expect_error(bias, dir, "bias \"all\" is not supported");
  std::string big = tmp / "big";
  run("cp -r " + good + " " + big + " && sed -i 's/\"r\": 4/\"r\": 40/' " + big +
      "/adapter_config.json");
  expect_error(big, dir, "r=40 is larger than v_proj's smaller dimension 20");
}
