// The committed embedded default (models/default, made by launch/make_default_model.sh):
// it loads, its geometry and size are what the README documents, it is really pretrained
// (loss on Devil's Dictionary text it never saw, far below a random init of the same
// geometry), and greedy generation gives words.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "model/generate.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "test_util.h"

using namespace abm;
using namespace abm::test;

namespace {

const std::string kDir = std::string(ABM_SOURCE_DIR) + "/models/default";

int64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

// `abmlora eval` on one rank and one thread (robust on a busy machine); returns its loss.
double eval_loss(const std::string& model, const std::string& data) {
  RunResult r = run(std::string(ABM_BINARY) + " eval --model " + model + " --data " + data +
                    " --max-length 256 --truncate --threads 1");
  EXPECT_EQ(r.status, 0) << r.output;
  size_t p = r.output.find("eval: loss ");
  EXPECT_NE(p, std::string::npos) << r.output;
  if (p == std::string::npos) return 1e9;
  return std::atof(r.output.c_str() + p + 11);
}

}  // namespace

TEST(DefaultModel, GeometryAndSizeAsDocumented) {
  LlamaModel m = LlamaModel::load(kDir);
  const LlamaConfig& c = m.config();
  EXPECT_EQ(c.hidden, 256);
  EXPECT_EQ(c.intermediate, 688);
  EXPECT_EQ(c.layers, 6);
  EXPECT_EQ(c.heads, 8);
  EXPECT_EQ(c.kv_heads, 4);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.vocab, 2048);
  EXPECT_EQ(c.max_positions, 256);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.total_params(), 4877568);
  int64_t n = 0;
  for (auto& [name, t] : m.named_weights()) n += t.numel();
  EXPECT_EQ(n, 4877568);

  Tokenizer tok(kDir + "/tokenizer.model");
  EXPECT_EQ(tok.vocab_size(), 2048);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);

  // The committed directory stays within the 20 MB the project allows.
  int64_t bytes = 0;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "RECIPE.md",
                        "pretrain_loss.tsv"}) {
    int64_t s = file_size(kDir + "/" + f);
    EXPECT_GE(s, 0) << kDir << "/" << f << " missing";
    bytes += s;
  }
  EXPECT_LE(bytes, 20000000);
}

// A fixed slice of text the base model never trained on (only its tokenizer saw it): the
// first 100 definitions of The Devil's Dictionary.
TEST(DefaultModel, PretrainedFarBelowRandomInitOnDevilsDictionary) {
  if (file_size("/usr/share/dictd/devil.dict.dz") < 0)
    GTEST_SKIP() << "dict-devil not installed (launch/setup.sh installs it)";
  TempDir tmp;
  RunResult r = run("bash " + std::string(ABM_SOURCE_DIR) + "/data/prepare_devil.sh " + tmp.path);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("awk 'BEGIN { RS = \"\" } NR <= 100 { print $0 \"\\n\" }' " + (tmp / "devil.txt") +
          " > " + (tmp / "slice.txt"));
  ASSERT_EQ(r.status, 0) << r.output;

  // The same geometry, randomly initialized, with the same tokenizer.
  r = run(std::string(ABM_BINARY) + " init-model --out " + (tmp / "random") +
          " --hidden 256 --intermediate 688 --layers 6 --heads 8 --kv-heads 4 --vocab 2048"
          " --max-positions 256 --tie --seed 0 && cp " + kDir + "/tokenizer.model " +
          (tmp / "random"));
  ASSERT_EQ(r.status, 0) << r.output;

  double trained = eval_loss(kDir, tmp / "slice.txt");
  double random = eval_loss(tmp / "random", tmp / "slice.txt");
  // Measured on the committed model (models/README.md): trained 6.041 (perplexity 420),
  // random init 7.663 (2127; ln 2048 = 7.62), a gap of 1.62 nats. The files are fixed, so
  // these reproduce up to float summation order; 0.01 leaves room for that only (a remade
  // model must update them). The gap is asserted at 1.5, below the measured 1.62.
  EXPECT_NEAR(trained, 6.041, 0.01);
  EXPECT_NEAR(random, 7.663, 0.01);
  EXPECT_LE(trained, random - 1.5) << "trained " << trained << ", random " << random;
}

TEST(DefaultModel, GreedyGenerationGivesWords) {
  LlamaModel m = LlamaModel::load(kDir);
  Tokenizer tok(kDir + "/tokenizer.model");
  SampleOptions o;
  o.max_new_tokens = 32;
  std::string text = tok.decode(generate(m, tok.encode("water: ", true), o));
  int letters = 0, spaces = 0;
  for (unsigned char ch : text) {
    letters += std::isalpha(ch) != 0;
    spaces += ch == ' ';
  }
  EXPECT_GE(spaces, 2) << text;
  EXPECT_GE(letters, static_cast<int>(0.7 * text.size())) << text;
}

// bf16 compute against fp32 on real text (README "Tolerances"): the first definitions of The
// Devil's Dictionary, 8 rows of 256 tokens. Logits within 5% of their largest magnitude
// and the argmax (the greedy token) the same on >= 95% of the 2,040 positions.
TEST(DefaultModel, Bf16ComputeFollowsFp32) {
  if (file_size("/usr/share/dictd/devil.dict.dz") < 0)
    GTEST_SKIP() << "dict-devil not installed (launch/setup.sh installs it)";
  TempDir tmp;
  RunResult r = run("bash " + std::string(ABM_SOURCE_DIR) + "/data/prepare_devil.sh " + tmp.path);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(tmp / "devil.txt");
  std::stringstream text;
  text << in.rdbuf();
  Tokenizer tok(kDir + "/tokenizer.model");
  std::vector<int64_t> ids = tok.encode(text.str(), true);
  ASSERT_GE(ids.size(), 8u * 256u);
  at::Tensor batch = at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 8 * 256)).view({8, 256});
  at::NoGradGuard ng;
  at::Tensor fp32 = LlamaModel::load(kDir).forward(batch);
  LoadOptions lo;
  lo.dtype = at::kBFloat16;
  at::Tensor bf16 = LlamaModel::load(kDir, lo).forward(batch);
  const double d = max_abs_diff(bf16, fp32), scale = fp32.abs().max().item<double>();
  const double agree = bf16.argmax(-1).eq(fp32.argmax(-1)).to(at::kFloat).mean().item<double>();
  std::printf("default model bf16 vs fp32: max|diff| %.3g (max|logit| %.3g), argmax agreement %.4f\n",
              d, scale, agree);
  EXPECT_LE(d, 0.05 * scale);  // measured 0.016 * scale
  EXPECT_GE(agree, 0.95);       // measured 0.984
  EXPECT_LT(agree, 1.0) << "bf16 equal to fp32 everywhere: is bf16 really computed?";
}

// A 60-step bf16 LoRA run on the default follows the fp32 run (README "Tolerances"): the
// same data, seed and schedule (Devil's Dictionary, 4 x 64 tokens per step, lr 3e-3); each
// step's loss within 0.05 of fp32's (measured: max 0.013, mean 0.004, while the loss falls
// from 6.6 to ~2), the mean of the last 10 within 0.02 (measured 0.0003).
TEST(DefaultModel, Bf16LoraRunFollowsFp32) {
  if (file_size("/usr/share/dictd/devil.dict.dz") < 0)
    GTEST_SKIP() << "dict-devil not installed (launch/setup.sh installs it)";
  TempDir tmp;
  RunResult r = run("bash " + std::string(ABM_SOURCE_DIR) + "/data/prepare_devil.sh " + tmp.path);
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<std::vector<nlohmann::json>> curves;
  for (std::string dt : {"fp32", "bf16"}) {
    std::string cmd = std::string(ABM_BINARY) + " train --model " + kDir + " --data " +
                      (tmp / "devil.jsonl") + " --template alpaca --max-length 64 --truncate" +
                      " --lora-targets all-linear --lora-r 8 --steps 60 --global-batch 4" +
                      " --lr 3e-3 --threads 1 --seed 0 --log-every 100 --dtype " + dt +
                      " --out " + (tmp / dt);
    r = run(cmd);
    ASSERT_EQ(r.status, 0) << cmd << "\n" << r.output;
    curves.push_back(read_jsonl(tmp / (dt + "/metrics.jsonl")));
    ASSERT_EQ(curves.back().size(), 60u);
  }
  double worst = 0, tail32 = 0, tail16 = 0;
  for (size_t i = 0; i < 60; ++i) {
    const double a = curves[0][i]["loss"].get<double>(), b = curves[1][i]["loss"].get<double>();
    worst = std::max(worst, std::abs(a - b));
    if (i >= 50) { tail32 += a / 10; tail16 += b / 10; }
  }
  std::printf("bf16 vs fp32 LoRA, 60 steps: max |loss diff| %.4f, last-10 means %.4f vs %.4f\n",
              worst, tail16, tail32);
  EXPECT_LE(worst, 0.05);
  EXPECT_GT(worst, 0.0) << "bf16 and fp32 curves identical: is bf16 really computed?";
  EXPECT_NEAR(tail16, tail32, 0.02);
  EXPECT_LT(tail32, curves[0][0]["loss"].get<double>() - 1.0) << "the run did not learn";
}
