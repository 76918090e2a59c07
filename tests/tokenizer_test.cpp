// Tokenizer: our SentencePiece wrapper (through the private shim) against Debian's
// spm_encode command line, on a model trained in the test from generated text.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/check.h"
#include "model/tokenizer.h"
#include "test_util.h"

using namespace abm;
using namespace abm::test;

namespace {

// A few thousand lines of varied English-like text with digits and punctuation.
std::string make_corpus(const TempDir& tmp) {
  const char* words[] = {"the", "model", "learns", "a", "boundary", "of", "activation", "low",
                         "rank", "adapter", "matches", "teacher", "signs", "quickly", "and",
                         "slowly", "runs", "on", "many", "ranks", "with", "data", "parallel"};
  std::string path = tmp / "corpus.txt";
  std::ofstream out(path);
  uint64_t x = 12345;
  for (int line = 0; line < 3000; ++line) {
    int n = 4 + line % 9;
    for (int i = 0; i < n; ++i) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      out << words[(x >> 33) % 23] << (i + 1 < n ? " " : "");
    }
    out << " " << line << ".\n";
  }
  return path;
}

}  // namespace

TEST(Tokenizer, MatchesSpmEncodeAndRoundTrips) {
  TempDir tmp;
  std::string corpus = make_corpus(tmp);
  Tokenizer::train(corpus, tmp / "tok", 300);
  Tokenizer tok(tmp / "tok.model");
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);

  const std::string text = "the teacher matches 42 signs, über-quickly!";
  std::vector<int64_t> ids = tok.encode(text, /*add_bos=*/false);
  RunResult r = run("printf '%s' '" + text + "' | spm_encode --model=" + (tmp / "tok.model") +
                    " --output_format=id");
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<int64_t> ref;
  std::istringstream in(r.output);
  for (int64_t v; in >> v;) ref.push_back(v);
  EXPECT_EQ(ids, ref);

  // Byte fallback keeps unseen characters ("ü") lossless; BOS is prepended on request.
  EXPECT_EQ(tok.decode(ids), text);
  std::vector<int64_t> with_bos = tok.encode(text, true);
  EXPECT_EQ(with_bos.front(), 1);
  EXPECT_EQ(std::vector<int64_t>(with_bos.begin() + 1, with_bos.end()), ids);
}

TEST(Tokenizer, MissingModelIsAClearError) {
  try {
    Tokenizer tok("/nonexistent/tokenizer.model");
    FAIL() << "no error";
  } catch (const abm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.model"), std::string::npos);
  }
}
