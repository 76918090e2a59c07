// Prompt templates: a record becomes segments of text, each either prompt (masked from the
// loss unless train_on_inputs) or response (trained), then token ids + labels.
//
//   plain        text as is: BOS, text, EOS, all trained. Alpaca/chat records under plain
//                are their fields joined by newlines, prompts masked, responses trained.
//   alpaca       Stanford Alpaca's prompt (with or without "### Input:"), response, EOS.
//   llama2-chat  Meta's chat format, one BOS ... EOS block per exchange:
//                <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...
//   auto         plain for text, alpaca for alpaca, llama2-chat for chat records.
// Pre-tokenized (tokens) records bypass templates: their ids are used as given.
//
// Each segment is encoded on its own, so the boundary between masked and trained tokens is
// exact (encoding "prompt+response" in one go can merge tokens across the boundary).
// SentencePiece's dummy prefix supplies the space before a separately encoded response.
// Labels follow example.h: labels[i] = ids[i] for trained tokens, kIgnore otherwise, and
// labels[0] (the BOS) is always kIgnore. EOS after each response is trained (the model
// must learn to stop).
#pragma once
#include <string>
#include <vector>

#include "data/example.h"
#include "data/jsonl_reader.h"

namespace abm {

class Tokenizer;

enum class Template { Auto, Plain, Alpaca, Llama2Chat };

// auto | plain | alpaca | llama2-chat; errors name `option`.
Template parse_template(const std::string& name, const std::string& option = "--template");
const char* template_name(Template t);
Template resolve_template(Template t, DataFormat f);  // Auto -> the format's default

struct Segment {
  std::string text;
  bool trained = false;  // response text: its labels are its ids
  bool bos = false;      // a BOS token (part of the prompt) before the text
  bool eos = false;      // an EOS token (trained like the response) after the text
};

// `f` is the record's format (text, alpaca or chat). Errors name record.where when the
// record does not fit the template.
std::vector<Segment> apply_template(Template t, DataFormat f, const Record& record);

Example tokenize(const std::vector<Segment>& segments, const Tokenizer& tok, bool train_on_inputs);

// The whole step for one record; `tok` may be null only for tokens records.
// text_budget > 0: text beyond that many bytes is cut before tokenizing (*cut = true).
Example make_example(const Record& record, DataFormat format, Template t, const Tokenizer* tok,
                     bool train_on_inputs, size_t text_budget = 0, bool* cut = nullptr);

}  // namespace abm
