#include "core/json_text.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/check.h"
#include "core/fs.h"

namespace abm {

void check_json_depth(std::string_view text, const std::string& where) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ABM_REQUIRE(++depth <= kMaxJsonDepth, where, ": JSON nested deeper than ",
                  kMaxJsonDepth, " levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

nlohmann::json parse_json(std::string_view text, const std::string& where) {
  check_json_depth(text, where);
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(where, ": not valid JSON: ", e.what()));
  }
}

std::string read_small_file(const std::string& path, size_t max_bytes) {
  require_regular_file(path);
  struct stat st {};
  ::stat(path.c_str(), &st);
  ABM_REQUIRE(static_cast<size_t>(st.st_size) <= max_bytes, path, ": ", st.st_size,
              " bytes, more than the ", max_bytes, " this file may have");
  std::ifstream in(path, std::ios::binary);
  ABM_REQUIRE(in, path, ": cannot open (", std::strerror(errno), ")");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace abm
