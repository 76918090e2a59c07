// Reading a data file into records (docs/design.md §4), before any template or tokenizer.
//
// Files and formats:
//   *.txt                 plain text, one example per blank-line-separated paragraph
//   *.json starting '['   a JSON array of records (Stanford's alpaca_data.json is one)
//   anything else         JSONL, one record per non-blank line
// Record formats (JSON), auto-detected from the first record unless forced:
//   text    {"text": ...}
//   alpaca  {"instruction": ..., "input": ... (optional), "output": ...}
//   chat    {"conversations": [{"from": "system"|"human"|"gpt", "value": ...}, ...]}  (sharegpt)
//           {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
//   tokens  {"input_ids": [int, ...], "labels": [int or -100, ...] (optional)}
// Every problem is one abm::Error line "FILE:LINE: <problem>" (or "FILE: record N: ..."
// inside a JSON array), so a user can jump straight to the bad line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace abm {

enum class DataFormat { Auto, Text, Alpaca, Chat, Tokens };

// auto | text | alpaca | chat (aliases sharegpt, messages) | tokens; errors name `option`.
DataFormat parse_data_format(const std::string& name,
                             const std::string& option = "--format");
const char* format_name(DataFormat f);

struct Message {
  std::string role;  // "system" | "user" | "assistant" (sharegpt's human/gpt mapped)
  std::string content;
};

// One record of any format; only the fields of its format are filled.
struct Record {
  std::string where;                        // "FILE:LINE" — prefix for later errors
  int64_t source = 0;                       // that LINE (record number in a JSON array)
  std::string text;                         // text
  std::string instruction, input, output;   // alpaca (input may be empty)
  std::vector<Message> messages;            // chat: [system], user, assistant, user, ...
  std::vector<int64_t> ids, labels;         // tokens; labels empty = every token trained
};

struct Records {
  std::string path;
  DataFormat format = DataFormat::Auto;  // resolved (never Auto)
  bool json_array = false;               // sources are record numbers, not lines
  std::vector<Record> records;           // never empty
};

Records read_records(const std::string& path, DataFormat format = DataFormat::Auto);

// "FILE:LINE" or "FILE: record N", as in messages about a record.
std::string locate(const std::string& path, bool json_array, int64_t source);

}  // namespace abm
