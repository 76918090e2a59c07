#include "model/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include "core/check.h"

namespace abm {

Tokenizer::Tokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
  auto st = sp_->Load(model_path);
  ABM_REQUIRE(st.ok(), model_path, ": cannot load SentencePiece model: ", st.ToString());
}

Tokenizer::~Tokenizer() = default;

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  ABM_REQUIRE(st.ok(), path_, ": encode failed: ", st.ToString());
  std::vector<int64_t> out;
  out.reserve(ids.size() + 1);
  if (add_bos) out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  std::string text;
  auto st = sp_->Decode(v, &text);
  ABM_REQUIRE(st.ok(), path_, ": decode failed: ", st.ToString());
  return text;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int64_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int64_t Tokenizer::eos_id() const { return sp_->eos_id(); }

void Tokenizer::train(const std::string& text_file, const std::string& prefix, int vocab_size) {
  std::string args = cat("--input=", text_file, " --model_prefix=", prefix,
                         " --vocab_size=", vocab_size,
                         " --model_type=bpe --byte_fallback=true --split_digits=true",
                         " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1",
                         " --character_coverage=1.0 --num_threads=1 --minloglevel=2");
  auto st = sentencepiece::SentencePieceTrainer::Train(args);
  ABM_REQUIRE(st.ok(), text_file, ": tokenizer training failed: ", st.ToString());
}

std::string tokenizer_path(const std::string& model_dir) {
  std::string p = model_dir + "/tokenizer.model";
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? p : "";
}

}  // namespace abm
