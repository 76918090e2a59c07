// The data room (src/data): records -> templates -> labels -> cache -> sampler -> batches
// -> loss. Expectations are computed independently of the code under test: prompts are
// spelled out here, index ranges are worked out by hand, the loss is recomputed from
// log_softmax, and packed rows are compared with the same examples run unpacked.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "core/check.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/loss.h"
#include "data/sampler.h"
#include "data/token_cache.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "test_util.h"

using namespace abm;
using namespace abm::test;

// Golden sampler outputs (see Sampler.EpochsSeedsAndGoldenValues), also reproduced by an
// independent Python transcription of splitmix64 / xoshiro256** / Fisher-Yates.
#define GOLDEN_E0 54, 80, 61, 33, 63, 98  // Sampler(100, seed 7), epoch 0, first six
#define GOLDEN_E1 5, 27, 23               // epoch 1, first three
#define GOLDEN_P 5, 0, 9, 3, 4, 2, 6, 8, 1, 7  // permutation(10, 1234)

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs f, expects an abm::Error of one line containing every piece of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << parts[0] << "\"";
  } catch (const abm::Error& e) {
    std::string m = e.what();
    std::printf("  error: %s\n", m.c_str());
    EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "missing \"" << p << "\" in: " << m;
  }
}

std::vector<int64_t> concat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<int64_t> vec(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<int64_t> ignored(size_t n) { return std::vector<int64_t>(n, kIgnore); }

// Tokens JSONL record.
std::string tokens_line(const std::vector<int64_t>& ids, const std::vector<int64_t>& labels = {}) {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  std::string s = "{\"input_ids\": " + list(ids);
  if (!labels.empty()) s += ", \"labels\": " + list(labels);
  return s + "}\n";
}

// A ~300-piece SentencePiece model trained once for the whole suite.
class Data : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string corpus;
    const char* words[] = {"the", "sky", "is", "blue", "name", "a", "color", "green", "red",
                           "tree", "river", "flows", "to", "sea", "cat", "sat", "on", "mat",
                           "how", "are", "you", "fine", "thanks", "hello", "there", "brief"};
    uint64_t st = 7;
    for (int line = 0; line < 400; ++line) {
      for (int w = 0; w < 8; ++w) corpus += std::string(w ? " " : "") + words[splitmix64(st) % 26];
      corpus += "\n";
    }
    write_file(*dir_ / "corpus.txt", corpus);
    Tokenizer::train(*dir_ / "corpus.txt", *dir_ / "tok", 300);
    tok_ = new Tokenizer(tokenizer());
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete dir_;
  }
  static std::string tokenizer() { return *dir_ / "tok.model"; }
  static std::vector<int64_t> enc(const std::string& s) { return tok_->encode(s, false); }

  TempDir tmp;
  DataOptions options(const std::string& file) {
    DataOptions o;
    o.path = file;
    o.tokenizer = tokenizer();
    return o;
  }

  static TempDir* dir_;
  static Tokenizer* tok_;
};
TempDir* Data::dir_ = nullptr;
Tokenizer* Data::tok_ = nullptr;

const char* kNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\nname a color\n\n### Response:\n";
const char* kWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
    "name a color\n\n### Input:\nthe sky\n\n### Response:\n";

// Sum of -log p(target) over labelled positions, straight from log_softmax.
double reference_loss(const at::Tensor& logits, const std::vector<int64_t>& labels) {
  at::Tensor lp = at::log_softmax(logits[0].to(at::kDouble), -1);  // [T, V]
  double s = 0;
  for (size_t j = 1; j < labels.size(); ++j)
    if (labels[j] != kIgnore) s -= lp[j - 1][labels[j]].item<double>();
  return s;
}

}  // namespace

// ---------------------------------------------------------------- templates and masking

TEST_F(Data, AlpacaMasksExactlyThePrompt) {
  std::string f = tmp / "a.jsonl";
  write_file(f, R"({"instruction": "name a color", "input": "", "output": "the sky is blue"})" "\n"
                R"({"instruction": "name a color", "input": "the sky", "output": "blue"})" "\n");
  DataSplits d = load_datasets(options(f));
  ASSERT_EQ(d.train.size(), 2);
  EXPECT_EQ(d.train.tmpl, Template::Alpaca);
  const int64_t bos = tok_->bos_id(), eos = tok_->eos_id();

  auto p0 = enc(kNoInput), r0 = enc("the sky is blue");
  const Example& e0 = d.train.examples[0];
  EXPECT_EQ(e0.ids, concat({{bos}, p0, r0, {eos}}));
  EXPECT_EQ(e0.labels, concat({ignored(1 + p0.size()), r0, {eos}}));
  auto p1 = enc(kWithInput), r1 = enc("blue");
  const Example& e1 = d.train.examples[1];
  EXPECT_EQ(e1.ids, concat({{bos}, p1, r1, {eos}}));
  EXPECT_EQ(e1.labels, concat({ignored(1 + p1.size()), r1, {eos}}));
  std::printf("  example 0: %zu prompt + %zu response tokens\n", p0.size() + 1, r0.size() + 1);

  // The batch and the loss count exactly the response tokens + EOS of both examples.
  Batch b = make_batch(d.train, {0, 1});
  const int64_t expected = static_cast<int64_t>(r0.size() + 1 + r1.size() + 1);
  EXPECT_EQ(b.tokens, expected);
  EXPECT_FALSE(b.allowed.defined());
  at::Tensor logits = at::randn({2, b.ids.size(1), tok_->vocab_size()});
  TokenLoss l = token_loss_sum(logits, b.labels);
  EXPECT_EQ(l.count, expected);
  double ref = reference_loss(logits.narrow(0, 0, 1), e0.labels) +
               reference_loss(logits.narrow(0, 1, 1), e1.labels);
  EXPECT_NEAR(l.sum.item<double>(), ref, 1e-4 * ref);

  // train_on_inputs: every token but the first (nothing predicts position 0).
  DataOptions o = options(f);
  o.train_on_inputs = true;
  DataSplits all = load_datasets(o);
  const Example& a0 = all.train.examples[0];
  EXPECT_EQ(a0.ids, e0.ids);
  EXPECT_EQ(a0.labels, concat({{kIgnore}, std::vector<int64_t>(e0.ids.begin() + 1, e0.ids.end())}));
  EXPECT_EQ(make_batch(all.train, {0, 1}).tokens, e0.size() - 1 + e1.size() - 1);
}

TEST_F(Data, Llama2ChatFormatSharegptAndMessagesAgree) {
  std::string m = tmp / "m.jsonl", s = tmp / "s.jsonl";
  write_file(m, R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"},)"
                R"( {"role": "assistant", "content": "hello"}, {"role": "user", "content": "how are you"},)"
                R"( {"role": "assistant", "content": " fine thanks "}, {"role": "user", "content": "bye"}]})" "\n");
  write_file(s, R"({"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "hello there"},)"
                R"( {"from": "gpt", "value": "hello"}, {"from": "human", "value": "how are you"},)"
                R"( {"from": "gpt", "value": " fine thanks "}]})" "\n");
  Example em = load_datasets(options(m)).train.examples[0];
  Example es = load_datasets(options(s)).train.examples[0];
  const int64_t bos = tok_->bos_id(), eos = tok_->eos_id();
  // Meta's format; the trailing user turn has no answer and is dropped.
  auto u1 = enc("[INST] <<SYS>>\nbe brief\n<</SYS>>\n\nhello there [/INST]"), a1 = enc("hello");
  auto u2 = enc("[INST] how are you [/INST]"), a2 = enc("fine thanks");
  EXPECT_EQ(em.ids, concat({{bos}, u1, a1, {eos, bos}, u2, a2, {eos}}));
  EXPECT_EQ(em.labels, concat({ignored(1 + u1.size()), a1, {eos, kIgnore}, ignored(u2.size()), a2, {eos}}));
  EXPECT_EQ(es.ids, em.ids);
  EXPECT_EQ(es.labels, em.labels);
}

TEST_F(Data, PlainTextParagraphsAndJsonArray) {
  std::string t = tmp / "p.txt";
  write_file(t, "the sky is blue\nthe sea is green\n\n\n\nthe cat sat\n");
  DataSplits d = load_datasets(options(t));
  ASSERT_EQ(d.train.size(), 2);
  EXPECT_EQ(d.train.format, DataFormat::Text);
  const Example& e = d.train.examples[0];
  auto body = enc("the sky is blue\nthe sea is green");
  EXPECT_EQ(e.ids, concat({{tok_->bos_id()}, body, {tok_->eos_id()}}));
  EXPECT_EQ(e.labels, concat({{kIgnore}, body, {tok_->eos_id()}}));
  EXPECT_EQ(d.train.examples[1].source, 6);  // the paragraph's first line

  // Stanford's alpaca_data.json is a JSON array; errors name the record.
  std::string j = tmp / "a.json";
  write_file(j, R"([{"instruction": "name a color", "input": "", "output": "blue"},)" "\n"
                R"( {"instruction": "name a color", "output": "red"}])");
  EXPECT_EQ(load_datasets(options(j)).train.size(), 2);
  write_file(j, R"([{"instruction": "name a color", "output": "blue"}, {"instruction": "x"}])");
  expect_error([&] { load_datasets(options(j)); }, {j + ": record 2: missing field \"output\""});
}

// ---------------------------------------------------------------- packing

TEST_F(Data, PackedRowsGiveTheSameLossAsUnpacked) {
  // Pre-tokenized examples of varied lengths with masked prompt parts (vocab 64).
  std::string f = tmp / "t.jsonl";
  std::string text;
  uint64_t st = 3;
  const int lengths[] = {5, 9, 3, 12, 7, 4, 6, 10};
  for (int len : lengths) {
    std::vector<int64_t> ids, labels;
    for (int i = 0; i < len; ++i) {
      ids.push_back(static_cast<int64_t>(splitmix64(st) % 64));
      labels.push_back(i < len / 3 ? kIgnore : ids.back());
    }
    text += tokens_line(ids, labels);
  }
  write_file(f, text);
  DataOptions o;
  o.path = f;
  o.max_length = 16;
  DataSplits plain = load_datasets(o);
  o.pack = true;
  DataSplits packed = load_datasets(o);
  ASSERT_EQ(plain.train.size(), 8);
  ASSERT_LT(packed.train.size(), 8);  // 5+9 | 3+12 | 7+4 | 6+10 under next-fit
  EXPECT_EQ(packed.train.rows, (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));

  LlamaConfig cfg;
  cfg.hidden = 32; cfg.intermediate = 48; cfg.layers = 2; cfg.heads = 4; cfg.kv_heads = 2;
  cfg.head_dim = 8; cfg.vocab = 64;
  LlamaModel model = LlamaModel::random(cfg, 11, at::kFloat, /*std=*/0.3);
  auto run = [&](const Batch& b, at::Tensor allowed) {
    at::NoGradGuard ng;
    at::Tensor h = model.forward_layers(model.embed(b.ids), b.positions, nullptr, allowed);
    return token_loss_sum(model.head(h), b.labels);
  };
  std::vector<int64_t> all_plain(8), all_packed(packed.train.size());
  for (size_t i = 0; i < all_plain.size(); ++i) all_plain[i] = i;
  for (size_t i = 0; i < all_packed.size(); ++i) all_packed[i] = i;
  Batch bp = make_batch(packed.train, all_packed), bu = make_batch(plain.train, all_plain);
  ASSERT_TRUE(bp.allowed.defined());
  EXPECT_EQ(vec(bp.positions[0].narrow(0, 0, 7)),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 0, 1}));  // reset at the second example
  EXPECT_FALSE(bp.allowed[0][0][5][4].item<bool>());       // no attention across examples
  EXPECT_TRUE(bp.allowed[0][0][6][5].item<bool>());
  TokenLoss lp = run(bp, bp.allowed), lu = run(bu, bu.allowed);
  // And one example at a time, no padding at all.
  double single = 0;
  int64_t single_count = 0;
  for (int64_t i = 0; i < 8; ++i) {
    Batch one = make_batch(plain.train, {i});
    TokenLoss l = run(one, one.allowed);
    single += l.sum.item<double>();
    single_count += l.count;
  }
  const double p = lp.sum.item<double>(), u = lu.sum.item<double>();
  std::printf("  loss sum: packed %.8f, padded %.8f, one by one %.8f (%lld targets)\n", p, u,
              single, static_cast<long long>(lp.count));
  EXPECT_EQ(lp.count, lu.count);
  EXPECT_EQ(lp.count, single_count);
  EXPECT_EQ(bp.tokens, lp.count);
  EXPECT_EQ(bp.tokens, plain.train.stats.targets);
  EXPECT_LE(std::abs(p - u), 1e-5 * std::abs(u));
  EXPECT_LE(std::abs(single - u), 1e-5 * std::abs(u));
  // The test can see a leak: with plain causal attention across the row it differs.
  const int64_t T = bp.ids.size(1);
  at::Tensor causal = at::ones({T, T}, at::kBool).tril().expand({bp.rows(), 1, T, T});
  const double leaky = run(bp, causal).sum.item<double>();
  EXPECT_GT(std::abs(leaky - u), 1e-3 * std::abs(u));
}

// ---------------------------------------------------------------- sampler

TEST(Sampler, RankSlicesByHand) {
  using R = std::vector<std::pair<int64_t, int64_t>>;
  auto slice = [](int64_t step, int64_t g, int rank, int world, int64_t micro) {
    R r;
    for (auto s : rank_slice(step, g, rank, world, micro)) r.emplace_back(s.begin, s.end);
    return r;
  };
  // Global batch 6, step 1 = samples 6..11.
  EXPECT_EQ(slice(1, 6, 0, 1, 2), (R{{6, 8}, {8, 10}, {10, 12}}));
  EXPECT_EQ(slice(1, 6, 0, 2, 1), (R{{6, 7}, {7, 8}, {8, 9}}));
  EXPECT_EQ(slice(1, 6, 1, 2, 1), (R{{9, 10}, {10, 11}, {11, 12}}));
  EXPECT_EQ(slice(1, 6, 0, 3, 2), (R{{6, 8}}));
  EXPECT_EQ(slice(1, 6, 1, 3, 2), (R{{8, 10}}));
  EXPECT_EQ(slice(1, 6, 2, 3, 2), (R{{10, 12}}));
  EXPECT_EQ(slice(0, 12, 2, 3, 2), (R{{8, 10}, {10, 12}}));
  // The check names the caller's options (library code names no CLI flag of its own).
  expect_error([] { check_batch_split(10, 2, 3, "--global-batch", "--micro-batch"); },
               {"--global-batch 10", "--micro-batch 2", "3 data rank(s)", "6 or 12"});
  expect_error([] { check_batch_split(4, 2, 3, "--abm-batch", "--abm-micro-batch"); },
               {"--abm-batch 4 is not a multiple of --abm-micro-batch 2", "nearest valid global batch: 6"});
  EXPECT_NO_THROW(check_batch_split(12, 2, 3, "--global-batch", "--micro-batch"));
  // Eval shards: 7 rows over 3 ranks.
  EXPECT_EQ(shard(7, 0, 3).begin, 0);
  EXPECT_EQ(shard(7, 0, 3).end, 2);
  EXPECT_EQ(shard(7, 1, 3).end, 4);
  EXPECT_EQ(shard(7, 2, 3).end, 7);
}

TEST(Sampler, SameGlobalOrderOnAnyWorldSize) {
  Sampler s(10, 42);
  const int64_t G = 6, steps = 7;  // 42 samples: crosses four epoch boundaries
  std::vector<int64_t> one;
  for (int64_t n = 0; n < G * steps; ++n) one.push_back(s.global_index(n));
  for (int world : {1, 2, 3}) {
    for (int64_t micro : {int64_t(1), int64_t(2)}) {
      if (G % (world * micro)) continue;
      std::vector<int64_t> seen;
      Sampler fresh(10, 42);  // a restarted job: only the step counter carries over
      for (int64_t step = 0; step < steps; ++step)
        for (int rank = 0; rank < world; ++rank)
          for (auto r : rank_slice(step, G, rank, world, micro))
            for (int64_t n = r.begin; n < r.end; ++n) seen.push_back(fresh.global_index(n));
      EXPECT_EQ(seen, one) << "world " << world << " micro " << micro;
    }
  }
}

TEST(Sampler, EpochsSeedsAndGoldenValues) {
  uint64_t st = 0;
  EXPECT_EQ(splitmix64(st), 0xe220a8397b1dcdafULL);  // the reference splitmix64's first output
  Sampler a(100, 7), b(100, 7), c(100, 8);
  std::vector<int64_t> e0, e1, e0b, c0;
  for (int64_t i = 0; i < 100; ++i) {
    e0.push_back(a.global_index(i));
    e1.push_back(a.global_index(100 + i));
    c0.push_back(c.global_index(i));
  }
  for (int64_t i = 0; i < 100; ++i) e0b.push_back(b.global_index(i));
  EXPECT_EQ(e0, e0b);  // same seed, same order
  EXPECT_NE(e0, e1);   // epochs differ
  EXPECT_NE(e0, c0);   // seeds differ
  for (const auto* p : {&e0, &e1, &c0}) {
    std::vector<int64_t> sorted = *p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 100; ++i) ASSERT_EQ(sorted[i], i);  // a permutation
  }
  EXPECT_EQ(a.global_index(5), e0[5]);  // going back to epoch 0 recomputes it
  // Golden values: a change of PRNG, seeding or shuffle changes every run's data order.
  std::printf("  golden: epoch0 %lld %lld %lld %lld %lld %lld, epoch1 %lld %lld %lld, perm(10,1234)",
              (long long)e0[0], (long long)e0[1], (long long)e0[2], (long long)e0[3],
              (long long)e0[4], (long long)e0[5], (long long)e1[0], (long long)e1[1],
              (long long)e1[2]);
  auto p = permutation(10, 1234);
  for (auto x : p) std::printf(" %lld", (long long)x);
  std::printf("\n");
  EXPECT_EQ(std::vector<int64_t>(e0.begin(), e0.begin() + 6), (std::vector<int64_t>{GOLDEN_E0}));
  EXPECT_EQ(std::vector<int64_t>(e1.begin(), e1.begin() + 3), (std::vector<int64_t>{GOLDEN_E1}));
  EXPECT_EQ(p, (std::vector<int64_t>{GOLDEN_P}));
  Sampler seq(5, 7, /*shuffle=*/false);
  EXPECT_EQ(seq.global_index(7), 2);
}

// ---------------------------------------------------------------- cache

TEST_F(Data, TokenCacheHitsInvalidatesAndRebuilds) {
  std::string f = tmp / "a.jsonl";
  const std::string rec1 = R"({"instruction": "name a color", "output": "the sky is blue"})" "\n";
  const std::string rec2 = R"({"instruction": "how are you", "input": "hello", "output": "fine"})" "\n";
  write_file(f, rec1 + rec2);
  DataOptions o = options(f);
  o.cache_dir = tmp / "cache/nested";
  auto load = [&] {
    Dataset d = load_datasets(o).train;
    std::printf("  cache: %s\n", d.cache.c_str());
    return d;
  };
  Dataset first = load();
  EXPECT_EQ(first.cache.rfind("built ", 0), 0u) << first.cache;
  Dataset second = load();
  ASSERT_EQ(second.cache.rfind("hit ", 0), 0u) << second.cache;
  const std::string path = second.cache.substr(4);
  ASSERT_EQ(second.examples.size(), first.examples.size());
  for (size_t i = 0; i < first.examples.size(); ++i) {
    EXPECT_EQ(second.examples[i].ids, first.examples[i].ids);
    EXPECT_EQ(second.examples[i].labels, first.examples[i].labels);
    EXPECT_EQ(second.examples[i].source, first.examples[i].source);
  }

  // Edited data at the same path: the same cache file is rebuilt.
  write_file(f, rec1 + rec2 + rec1);
  Dataset edited = load();
  EXPECT_EQ(edited.cache, "rebuilt " + path + " (made from other data)");
  EXPECT_EQ(edited.size(), 3);
  EXPECT_EQ(load().cache, "hit " + path);

  // Another template is another cache entry.
  o.tmpl = Template::Llama2Chat;
  Dataset chat = load();
  EXPECT_EQ(chat.cache.rfind("built ", 0), 0u) << chat.cache;
  EXPECT_NE(chat.examples[0].ids, edited.examples[0].ids);
  o.tmpl = Template::Auto;

  // A truncated file: HDF5 cannot open it.
  std::string bytes = read_file(path);
  write_file(path, bytes.substr(0, bytes.size() / 2));
  Dataset fixed = load();
  EXPECT_EQ(fixed.cache.rfind("rebuilt " + path + " (unreadable: ", 0), 0u) << fixed.cache;
  EXPECT_EQ(fixed.examples[2].ids, edited.examples[2].ids);
  // Flipped bytes anywhere: either HDF5 or the content hash notices, or the byte was slack;
  // the examples are right every time.
  int rebuilt = 0;
  for (double at : {0.3, 0.6, 0.75, 0.9, 0.97}) {
    bytes = read_file(path);
    bytes[static_cast<size_t>(at * bytes.size())] ^= 0x5a;
    write_file(path, bytes);
    Dataset d = load();
    rebuilt += d.cache.rfind("rebuilt", 0) == 0;
    ASSERT_EQ(d.size(), 3);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(d.examples[i].ids, edited.examples[i].ids);
  }
  EXPECT_GT(rebuilt, 0);
}

// ---------------------------------------------------------------- lengths and splits

TEST_F(Data, TruncationIsCountedOrAnError) {
  std::string f = tmp / "t.jsonl";
  std::vector<int64_t> five{1, 5, 6, 7, 2}, twenty(20, 9), thirty(30, 8);
  write_file(f, tokens_line(five) + "\n" + tokens_line(twenty) + tokens_line(thirty));
  DataOptions o;
  o.path = f;
  o.max_length = 10;
  expect_error([&] { load_datasets(o); },
               {f + ":3: example has 20 tokens, more than --max-length 10", "2 example(s)", "--truncate"});
  o.truncate = true;
  Dataset d = load_datasets(o).train;
  EXPECT_EQ(d.stats.truncated, 2);
  EXPECT_EQ(d.stats.tokens_dropped, 10 + 20);
  EXPECT_EQ(d.examples[1].size(), 10);
  EXPECT_EQ(d.stats.tokens, 5 + 10 + 10);
  EXPECT_EQ(d.stats.targets, 4 + 9 + 9);
  EXPECT_NE(d.summary().find("2 truncated (30 tokens dropped)"), std::string::npos) << d.summary();
  std::printf("  %s\n", d.summary().c_str());

  // An example whose trained part is cut away entirely is dropped and counted.
  std::vector<int64_t> late(12, 4), late_labels = ignored(12);
  late_labels[11] = 4;
  write_file(f, tokens_line(five) + tokens_line(late, late_labels));
  d = load_datasets(o).train;
  EXPECT_EQ(d.size(), 1);
  EXPECT_EQ(d.stats.untrained, 1);
}

TEST_F(Data, EvalSplitByFractionOrFile) {
  std::string f = tmp / "t.jsonl", e = tmp / "e.jsonl";
  std::string text;
  for (int i = 0; i < 8; ++i) text += tokens_line({1, 10 + i, 2});
  write_file(f, text);
  write_file(e, tokens_line({1, 50, 2}));
  DataOptions o;
  o.path = f;
  o.eval_fraction = 0.25;
  o.split_seed = 5;
  DataSplits d = load_datasets(o), again = load_datasets(o);
  ASSERT_EQ(d.train.size(), 6);
  ASSERT_EQ(d.eval.size(), 2);
  std::vector<int64_t> sources;
  for (auto* s : {&d.train, &d.eval})
    for (auto& ex : s->examples) sources.push_back(ex.source);
  std::sort(sources.begin(), sources.end());
  EXPECT_EQ(sources, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(again.eval.examples[0].ids, d.eval.examples[0].ids);
  o.eval_fraction = 0;
  o.eval_path = e;
  d = load_datasets(o);
  EXPECT_EQ(d.train.size(), 8);
  ASSERT_EQ(d.eval.size(), 1);
  EXPECT_EQ(d.eval.examples[0].ids, (std::vector<int64_t>{1, 50, 2}));
  o.eval_fraction = 0.5;
  expect_error([&] { load_datasets(o); }, {"--eval-data and --eval-fraction"});
}

// ---------------------------------------------------------------- bad input

TEST_F(Data, BadInputNamesFileAndLine) {
  std::string f = tmp / "bad.jsonl";
  const std::string good = R"({"instruction": "name a color", "output": "blue"})" "\n";
  auto fails = [&](const std::string& content, const std::vector<std::string>& parts,
                   DataFormat format = DataFormat::Auto) {
    write_file(f, content);
    DataOptions o = options(f);
    o.format = format;
    expect_error([&] { load_datasets(o); }, parts);
  };
  fails(good + "\n" + "{\"instruction\": \"x\", \"output\": \n", {f + ":3: bad JSON at column"});
  fails(good + R"({"instruction": "x"})" "\n", {f + ":2: missing field \"output\" (alpaca format)"});
  fails(good + R"({"instruction": "x", "output": 5})" "\n",
        {f + ":2: field \"output\" must be a string, got number"});
  fails(good + "[1, 2]\n", {f + ":2: expected a JSON object, got array"});
  fails("", {f + ": empty dataset"});
  fails("\n  \n", {f + ": empty dataset"});
  fails(R"({"prompt": "x"})" "\n", {f + ":1: cannot detect the data format", "--format"});
  fails(good, {f + ":1: missing field \"conversations\" or \"messages\" (chat format)"},
        DataFormat::Chat);
  fails(R"({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]})" "\n",
        {f + ":1: messages[1]: unknown role \"bot\""});
  fails(R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})" "\n",
        {f + ":1: messages[1]: expected role assistant, got user"});
  fails(R"({"messages": [{"role": "user", "content": "a"}]})" "\n",
        {f + ":1: conversation has no assistant answer"});
  fails(R"({"input_ids": [1, 2], "labels": [1]})" "\n", {f + ":1: \"labels\" has 1 entries"});
  fails(R"({"input_ids": [1, "x"]})" "\n", {f + ":1: input_ids[1] must be an integer, got string"});
  fails(R"({"input_ids": [1, 100000]})" "\n", {f + ":1: token id 100000 is outside the tokenizer's vocabulary"});
  write_file(tmp / "p.txt", "the sky\n");
  expect_error([&] { DataOptions o = options(tmp / "p.txt"); o.format = DataFormat::Alpaca; load_datasets(o); },
               {tmp / "p.txt", ": a .txt file is plain text, but --format is alpaca"});
  write_file(f, R"({"text": "the sky"})" "\n");
  expect_error([&] { DataOptions o = options(f); o.tmpl = Template::Alpaca; load_datasets(o); },
               {f + ":1: template alpaca needs instruction/output records"});
  expect_error([] { parse_data_format("xml"); }, {"--format: unknown data format \"xml\""});
  expect_error([] { parse_template("vicuna"); }, {"--template: unknown template \"vicuna\""});
  expect_error([&] { DataOptions o; o.path = tmp / "missing.jsonl"; load_datasets(o); },
               {tmp / "missing.jsonl", "cannot open data file"});
  write_file(f, good);
  expect_error([&] { DataOptions o; o.path = f; load_datasets(o); },
               {f + ": alpaca data needs a tokenizer"});
  write_file(f, R"({"input_ids": [1, 70, 2]})" "\n");
  expect_error([&] { DataOptions o; o.path = f; o.vocab_size = 64; load_datasets(o); },
               {f + ":1: token id 70 is outside the model's vocabulary of 64"});
}
