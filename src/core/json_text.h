// Every JSON document the program reads (configs, safetensors headers, PEFT files, data
// lines, abm.json) is parsed through here. A hostile file can nest a value 100,000 levels
// deep; nlohmann's recursive walks (dump, get, destruction of some shapes) would then
// overflow the stack, so the nesting is measured by a flat scan before anything parses it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace abm {

inline constexpr int kMaxJsonDepth = 64;  // LLaMA configs nest 3 deep, PEFT configs 2

// Throws "WHERE: JSON nested deeper than 64 levels" when text nests too deep.
void check_json_depth(std::string_view text, const std::string& where);

// check_json_depth, then nlohmann's parse; a syntax error becomes
// "WHERE: not valid JSON: <nlohmann's line/column and reason>".
nlohmann::json parse_json(std::string_view text, const std::string& where);

// The whole of a regular file of at most max_bytes (configs, index files), with errors
// that name the path: missing, not a regular file (a FIFO or /dev/zero never ends), too big.
std::string read_small_file(const std::string& path, size_t max_bytes = size_t(64) << 20);

}  // namespace abm
