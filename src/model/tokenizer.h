// Tokenizer: SentencePiece `tokenizer.model` (LLaMA-2's tokenizer format), plus training
// of a new one from text (for making small base models). SentencePiece is reached through
// a small shim library loaded in a private symbol scope (see spm_shim/spm_shim.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace abm {

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int64_t> encode(const std::string& text, bool add_bos) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t vocab_size() const;
  // The most text bytes one token can stand for (+1 for the space SentencePiece prefixes):
  // a text of more than n times this many bytes has more than n tokens.
  int64_t max_piece_bytes() const;
  int64_t bos_id() const;
  int64_t eos_id() const;

  // Trains a BPE model on a text file (one sentence per line) with Debian's spm_train and LLaMA's conventions
  // (byte fallback, digits split, ids unk=0 bos=1 eos=2, no pad). Writes PREFIX.model.
  static void train(const std::string& text_file, const std::string& prefix, int vocab_size);

 private:
  void* handle_ = nullptr;
  mutable int64_t max_piece_bytes_ = 0;  // computed on first use
  std::string path_;
};

// Finds the tokenizer of a model directory (DIR/tokenizer.model), or "" if there is none.
std::string tokenizer_path(const std::string& model_dir);

}  // namespace abm
