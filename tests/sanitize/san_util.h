// Helpers of the sanitizer parser tests: a scratch directory, files, and "throws
// abm::Error whose message contains ...".
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/check.h"

namespace abm::san {

struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/abm-san-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path = ::mkdtemp(buf.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the abm::Error `f` throws, or "" (and a test failure) when it throws
// nothing or something else.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const abm::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-abm::Error exception: " << e.what();
    return "";
  } catch (...) {
    ADD_FAILURE() << "threw a non-exception";
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// `f` throws abm::Error with every one of `parts` in its one-line message.
#define EXPECT_ABM_ERROR(stmt, ...)                                              \
  do {                                                                           \
    std::string msg_ = ::abm::san::error_of([&] { stmt; });                      \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__})       \
      EXPECT_NE(msg_.find(part_), std::string::npos)                             \
          << "message \"" << msg_ << "\" lacks \"" << part_ << "\"";             \
    EXPECT_EQ(msg_.find('\n'), std::string::npos) << "not one line: " << msg_;   \
  } while (0)

inline std::string nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

// A safetensors file from a header text and a data section.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

}  // namespace abm::san
