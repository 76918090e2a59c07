// abmlora tokenizer: train a SentencePiece BPE tokenizer with LLaMA's conventions on a
// text file (for making small base models), or encode text to check one.
#include <iostream>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "model/tokenizer.h"

namespace abm {

int cmd_tokenizer(int argc, char** argv) {
  struct {
    std::string train, out, model, encode;
    int vocab = 1024;
  } cfg;
  Options opts("tokenizer", "Train a tokenizer (--train TEXT --out DIR) or encode (--model F --encode T).");
  opts.add()("train", po::value(&cfg.train)->default_value(""), "text file, one sentence per line")
      ("out", po::value(&cfg.out)->default_value(""), "directory to write tokenizer.model into")
      ("vocab", po::value(&cfg.vocab)->default_value(cfg.vocab), "vocabulary size")
      ("model", po::value(&cfg.model)->default_value(""), "tokenizer.model to encode with")
      ("encode", po::value(&cfg.encode)->default_value(""), "text to encode (prints ids)");
  if (!opts.parse(argc, argv)) return 0;
  Runtime::agree([&] {
    ABM_REQUIRE(!cfg.train.empty() != !cfg.model.empty(), "tokenizer: give --train TEXT --out DIR, or --model F --encode TEXT");
    if (Runtime::rank() != 0) return;
    if (!cfg.train.empty()) {
      ABM_REQUIRE(!cfg.out.empty(), "tokenizer --train needs --out DIR");
      ABM_REQUIRE(cfg.vocab >= 260, "--vocab must be at least 260 (256 byte-fallback pieces + specials)");
      make_dirs(cfg.out);
      Tokenizer::train(cfg.train, cfg.out + "/tokenizer", cfg.vocab);
      log0("tokenizer: ", cfg.vocab, " pieces -> ", cfg.out, "/tokenizer.model");
    } else {
      Tokenizer tok(cfg.model);
      for (auto id : tok.encode(cfg.encode, true)) std::cout << id << " ";
      std::cout << "\n";
    }
  });
  return 0;
}

}  // namespace abm
