#include "data/templates.h"

#include "core/check.h"
#include "model/tokenizer.h"

namespace abm {
namespace {

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Stanford Alpaca's prompts (tatsu-lab/stanford_alpaca, train.py), with the newline after
// "### Response:" that alpaca-lora and most fine-tuning recipes use.
std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty())
    return "Below is an instruction that describes a task. "
           "Write a response that appropriately completes the request.\n\n"
           "### Instruction:\n" + instruction + "\n\n### Response:\n";
  return "Below is an instruction that describes a task, paired with an input that provides "
         "further context. Write a response that appropriately completes the request.\n\n"
         "### Instruction:\n" + instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

// A record as (system, [(user, assistant)]); a trailing user turn without an answer has
// nothing to train on and is dropped.
struct Exchanges {
  std::string system;
  std::vector<std::pair<std::string, std::string>> turns;
};

Exchanges exchanges(const Record& r) {
  Exchanges x;
  if (!r.messages.empty()) {
    size_t i = 0;
    if (r.messages[0].role == "system") x.system = r.messages[i++].content;
    for (; i + 1 < r.messages.size(); i += 2)
      x.turns.emplace_back(r.messages[i].content, r.messages[i + 1].content);
  } else {  // alpaca: the input is context for the instruction
    x.turns.emplace_back(r.input.empty() ? r.instruction : r.instruction + "\n\n" + r.input,
                         r.output);
  }
  ABM_REQUIRE(!x.turns.empty(), r.where, ": conversation has no assistant answer to train on");
  return x;
}

std::vector<Segment> plain(const Record& r, DataFormat f) {
  if (f == DataFormat::Text) return {{r.text, true, true, true}};
  if (f == DataFormat::Alpaca) {
    std::string prompt = r.input.empty() ? r.instruction : r.instruction + "\n" + r.input;
    return {{prompt + "\n", false, true, false}, {r.output, true, false, true}};
  }
  Exchanges x = exchanges(r);
  std::vector<Segment> out{{x.system.empty() ? "" : x.system + "\n", false, true, false}};
  for (auto& [user, answer] : x.turns) {
    out.push_back({user + "\n", false});
    out.push_back({answer, true, false, true});
  }
  return out;
}

std::vector<Segment> alpaca(const Record& r, DataFormat f) {
  ABM_REQUIRE(f != DataFormat::Text, r.where,
              ": template alpaca needs instruction/output records, this is plain text "
              "(use --template plain)");
  if (f == DataFormat::Alpaca)
    return {{alpaca_prompt(r.instruction, r.input), false, true, false},
            {r.output, true, false, true}};
  Exchanges x = exchanges(r);
  ABM_REQUIRE(x.turns.size() == 1 && x.system.empty(), r.where,
              ": template alpaca takes one user/assistant exchange without a system turn; this "
              "conversation has ", x.turns.size(), " exchange(s)",
              x.system.empty() ? "" : " and a system turn", " (use --template llama2-chat)");
  return {{alpaca_prompt(x.turns[0].first, ""), false, true, false},
          {x.turns[0].second, true, false, true}};
}

// Meta's llama chat_completion format (llama/generation.py): each exchange is
// BOS "[INST] {user} [/INST] {answer} " EOS, the system prompt folded into the first user
// turn as "<<SYS>>\n{system}\n<</SYS>>\n\n", contents stripped.
std::vector<Segment> llama2_chat(const Record& r, DataFormat f) {
  ABM_REQUIRE(f != DataFormat::Text, r.where,
              ": template llama2-chat needs conversations or alpaca records, this is plain text "
              "(use --template plain)");
  Exchanges x = exchanges(r);
  std::vector<Segment> out;
  for (size_t i = 0; i < x.turns.size(); ++i) {
    std::string user = trim(x.turns[i].first);
    if (i == 0 && !x.system.empty()) user = "<<SYS>>\n" + trim(x.system) + "\n<</SYS>>\n\n" + user;
    out.push_back({"[INST] " + user + " [/INST]", false, true, false});
    out.push_back({trim(x.turns[i].second), true, false, true});
  }
  return out;
}

}  // namespace

Template parse_template(const std::string& name, const std::string& option) {
  if (name == "auto") return Template::Auto;
  if (name == "plain") return Template::Plain;
  if (name == "alpaca") return Template::Alpaca;
  if (name == "llama2-chat") return Template::Llama2Chat;
  throw Error(cat(option, ": unknown template \"", name,
                  "\" (expected auto, plain, alpaca or llama2-chat)"));
}

const char* template_name(Template t) {
  switch (t) {
    case Template::Auto: return "auto";
    case Template::Plain: return "plain";
    case Template::Alpaca: return "alpaca";
    case Template::Llama2Chat: return "llama2-chat";
  }
  return "?";
}

Template resolve_template(Template t, DataFormat f) {
  if (t != Template::Auto) return t;
  if (f == DataFormat::Alpaca) return Template::Alpaca;
  if (f == DataFormat::Chat) return Template::Llama2Chat;
  return Template::Plain;
}

std::vector<Segment> apply_template(Template t, DataFormat f, const Record& record) {
  ABM_CHECK(f != DataFormat::Auto && f != DataFormat::Tokens, "no template for ", format_name(f));
  switch (t) {
    case Template::Plain: return plain(record, f);
    case Template::Alpaca: return alpaca(record, f);
    case Template::Llama2Chat: return llama2_chat(record, f);
    case Template::Auto: return apply_template(resolve_template(t, f), f, record);
  }
  return {};
}

Example tokenize(const std::vector<Segment>& segments, const Tokenizer& tok, bool train_on_inputs) {
  Example ex;
  // An empty response would teach nothing but EOS: its EOS is not trained either, so the
  // example counts as having nothing to train on (dropped and counted by the dataset).
  bool has_response = false;
  for (const Segment& s : segments) has_response = has_response || (s.trained && !s.text.empty());
  auto push = [&](int64_t id, bool trained) {
    ex.ids.push_back(id);
    ex.labels.push_back(trained || train_on_inputs ? id : kIgnore);
  };
  for (const Segment& s : segments) {
    if (s.bos) push(tok.bos_id(), false);
    if (!s.text.empty())
      for (int64_t id : tok.encode(s.text, /*add_bos=*/false)) push(id, s.trained);
    if (s.eos) push(tok.eos_id(), has_response);
  }
  if (!ex.labels.empty()) ex.labels[0] = kIgnore;  // nothing predicts position 0 (example.h)
  return ex;
}

Example make_example(const Record& record, DataFormat format, Template t, const Tokenizer* tok,
                     bool train_on_inputs, size_t text_budget, bool* cut) {
  if (format == DataFormat::Tokens) {
    Example ex{record.ids, record.labels.empty() ? record.ids : record.labels};
    ex.labels[0] = kIgnore;
    return ex;
  }
  ABM_CHECK(tok, "a tokenizer is needed for ", format_name(format), " records");
  std::vector<Segment> segments = apply_template(t, format, record);
  // Text past the budget could only become tokens past --max-length: cut it here rather
  // than tokenize megabytes (at a UTF-8 character boundary; later segments go too).
  size_t used = 0;
  for (size_t i = 0; text_budget > 0 && i < segments.size(); ++i) {
    std::string& text = segments[i].text;
    if (used + text.size() <= text_budget) {
      used += text.size();
      continue;
    }
    size_t keep = text_budget - used;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
    text.resize(keep);
    segments.resize(i + 1);
    if (cut) *cut = true;
    break;
  }
  return tokenize(segments, *tok, train_on_inputs);
}

}  // namespace abm
