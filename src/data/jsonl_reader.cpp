#include "data/jsonl_reader.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/json_text.h"

namespace abm {
namespace {

using json = nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 1, column 7:
// syntax error ..."; the line is ours to give, so keep the column and the explanation.
std::string json_problem(const json::parse_error& e) {
  std::string m = e.what();
  auto col = m.find("column ");
  auto colon = m.find(": ", col == std::string::npos ? 0 : col);
  if (col == std::string::npos || colon == std::string::npos) return "bad JSON: " + m;
  return "bad JSON at " + m.substr(col, colon - col) + ": " + m.substr(colon + 2);
}

const json& field(const json& j, const char* key, json::value_t type, const std::string& where,
                  const char* format) {
  ABM_REQUIRE(j.contains(key), where, ": missing field \"", key, "\" (", format, " format)");
  const json& v = j.at(key);
  ABM_REQUIRE(v.type() == type, where, ": field \"", key, "\" must be ",
              type == json::value_t::array ? "an array" : "a string", ", got ", v.type_name());
  return v;
}

std::string str(const json& j, const char* key, const std::string& where, const char* format) {
  return field(j, key, json::value_t::string, where, format).get<std::string>();
}

std::vector<int64_t> int_array(const json& j, const char* key, const std::string& where) {
  const json& a = field(j, key, json::value_t::array, where, "tokens");
  std::vector<int64_t> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ABM_REQUIRE(a[i].is_number_integer(), where, ": ", key, "[", i, "] must be an integer, got ",
                a[i].type_name());
    out.push_back(a[i].get<int64_t>());
  }
  return out;
}

// sharegpt roles (human/gpt) and OpenAI roles (user/assistant) to one vocabulary.
std::string normalize_role(const std::string& r, const std::string& where, const std::string& at) {
  if (r == "human" || r == "user") return "user";
  if (r == "gpt" || r == "assistant" || r == "chatgpt") return "assistant";
  if (r == "system") return "system";
  throw Error(cat(where, ": ", at, ": unknown role \"", r,
                  "\" (expected system, human/user or gpt/assistant)"));
}

std::vector<Message> parse_chat(const json& j, const std::string& where) {
  ABM_REQUIRE(j.contains("conversations") || j.contains("messages"), where,
              ": missing field \"conversations\" or \"messages\" (chat format)");
  const bool sharegpt = j.contains("conversations");
  const char* list = sharegpt ? "conversations" : "messages";
  const char* role_key = sharegpt ? "from" : "role";
  const char* text_key = sharegpt ? "value" : "content";
  const json& turns = field(j, list, json::value_t::array, where, "chat");
  ABM_REQUIRE(!turns.empty(), where, ": \"", list, "\" is empty");
  std::vector<Message> out;
  for (size_t i = 0; i < turns.size(); ++i) {
    std::string at = cat(list, "[", i, "]");
    ABM_REQUIRE(turns[i].is_object(), where, ": ", at, " must be an object, got ",
                turns[i].type_name());
    std::string tw = cat(where, ": ", at);
    Message m{normalize_role(str(turns[i], role_key, tw, "chat"), where, at),
              str(turns[i], text_key, tw, "chat")};
    // [system], then user and assistant strictly alternating: templates rely on pairs.
    std::string expected = (out.empty() || out.back().role != "user") ? "user" : "assistant";
    if (m.role == "system") {
      ABM_REQUIRE(out.empty(), where, ": ", at, ": a system turn may only come first");
    } else {
      ABM_REQUIRE(m.role == expected, where, ": ", at, ": expected role ", expected, ", got ",
                  m.role, " (turns must alternate user, assistant)");
    }
    out.push_back(std::move(m));
  }
  return out;
}

DataFormat detect(const json& j, const std::string& where) {
  if (j.contains("input_ids")) return DataFormat::Tokens;
  if (j.contains("conversations") || j.contains("messages")) return DataFormat::Chat;
  if (j.contains("instruction")) return DataFormat::Alpaca;
  if (j.contains("text")) return DataFormat::Text;
  throw Error(cat(where, ": cannot detect the data format: the first record has none of the "
                  "fields text, instruction, conversations, messages, input_ids "
                  "(or force one with --format)"));
}

Record parse_record(const json& j, DataFormat f, const std::string& where) {
  ABM_REQUIRE(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  Record r;
  r.where = where;
  switch (f) {
    case DataFormat::Text: r.text = str(j, "text", where, "text"); break;
    case DataFormat::Alpaca:
      r.instruction = str(j, "instruction", where, "alpaca");
      if (j.contains("input") && !j.at("input").is_null()) r.input = str(j, "input", where, "alpaca");
      r.output = str(j, "output", where, "alpaca");
      break;
    case DataFormat::Chat: r.messages = parse_chat(j, where); break;
    case DataFormat::Tokens:
      r.ids = int_array(j, "input_ids", where);
      ABM_REQUIRE(!r.ids.empty(), where, ": \"input_ids\" is empty");
      for (size_t i = 0; i < r.ids.size(); ++i)
        ABM_REQUIRE(r.ids[i] >= 0, where, ": input_ids[", i, "] = ", r.ids[i], " is negative");
      if (j.contains("labels")) {
        r.labels = int_array(j, "labels", where);
        ABM_REQUIRE(r.labels.size() == r.ids.size(), where, ": \"labels\" has ", r.labels.size(),
                    " entries but \"input_ids\" has ", r.ids.size());
        for (size_t i = 0; i < r.labels.size(); ++i)
          ABM_REQUIRE(r.labels[i] >= 0 || r.labels[i] == -100, where, ": labels[", i, "] = ",
                      r.labels[i], " (expected a token id or -100)");
      }
      break;
    case DataFormat::Auto: ABM_CHECK(false, "format not resolved");
  }
  return r;
}

// Adds one JSON record, resolving the format from the first one.
void add_json(Records& out, const json& j, int64_t source) {
  std::string where = locate(out.path, out.json_array, source);
  if (out.format == DataFormat::Auto) {
    ABM_REQUIRE(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
    out.format = detect(j, where);
  }
  out.records.push_back(parse_record(j, out.format, where));
  out.records.back().source = source;
}

void read_text_file(std::istream& in, Records& out) {
  std::string line, para;
  int64_t lineno = 0, start = 0;
  auto flush = [&] {
    if (para.empty()) return;
    Record r;
    r.where = cat(out.path, ":", start);
    r.source = start;
    r.text = para;
    out.records.push_back(std::move(r));
    para.clear();
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line)) { flush(); continue; }
    if (para.empty()) start = lineno;
    else para += '\n';
    para += line;
  }
  flush();
}

void read_jsonl(std::istream& in, Records& out) {
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (blank(line)) continue;
    std::string where = cat(out.path, ":", lineno);
    check_json_depth(line, where);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw Error(cat(where, ": ", json_problem(e)));
    }
    add_json(out, j, lineno);
  }
}

void read_json_array(std::istream& in, Records& out) {
  const std::string text(std::istreambuf_iterator<char>(in), {});
  check_json_depth(text, out.path);
  json a;
  try {
    a = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(cat(out.path, ": ", e.what()));  // nlohmann names line and column here
  }
  ABM_REQUIRE(a.is_array(), out.path, ": expected a JSON array of records");
  out.json_array = true;
  for (size_t i = 0; i < a.size(); ++i) add_json(out, a[i], static_cast<int64_t>(i) + 1);
}

}  // namespace

DataFormat parse_data_format(const std::string& name, const std::string& option) {
  if (name == "auto") return DataFormat::Auto;
  if (name == "text") return DataFormat::Text;
  if (name == "alpaca") return DataFormat::Alpaca;
  if (name == "chat" || name == "sharegpt" || name == "messages") return DataFormat::Chat;
  if (name == "tokens") return DataFormat::Tokens;
  throw Error(cat(option, ": unknown data format \"", name,
                  "\" (expected auto, text, alpaca, chat, sharegpt, messages or tokens)"));
}

const char* format_name(DataFormat f) {
  switch (f) {
    case DataFormat::Auto: return "auto";
    case DataFormat::Text: return "text";
    case DataFormat::Alpaca: return "alpaca";
    case DataFormat::Chat: return "chat";
    case DataFormat::Tokens: return "tokens";
  }
  return "?";
}

std::string locate(const std::string& path, bool json_array, int64_t source) {
  return json_array ? cat(path, ": record ", source) : cat(path, ":", source);
}

Records read_records(const std::string& path, DataFormat format) {
  refuse_special_file(path);  // /dev/zero would be read forever; opening a FIFO blocks
  std::ifstream in(path, std::ios::binary);
  ABM_REQUIRE(in, path, ": cannot open data file: ", std::strerror(errno));
  Records out;
  out.path = path;
  out.format = format;
  if (ends_with(path, ".txt")) {
    ABM_REQUIRE(format == DataFormat::Auto || format == DataFormat::Text, path,
                ": a .txt file is plain text, but --format is ", format_name(format));
    out.format = DataFormat::Text;
    read_text_file(in, out);
  } else {
    // A JSON array starts with '['; a JSONL file starts with '{' (or is malformed).
    char c = 0;
    while (in.get(c) && std::isspace(static_cast<unsigned char>(c))) {}
    in.clear();
    in.seekg(0);
    if (c == '[') read_json_array(in, out);
    else read_jsonl(in, out);
  }
  ABM_REQUIRE(!out.records.empty(), path, ": empty dataset (no records)");
  return out;
}

}  // namespace abm
