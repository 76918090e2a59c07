#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/check.h"

namespace abm {
namespace fs = std::filesystem;

void make_dirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  ABM_REQUIRE(!ec && fs::is_directory(dir), dir, ": cannot create directory (",
              ec ? ec.message() : "exists as a file", ")");
}

void require_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  ABM_REQUIRE(fs::exists(dir, ec), dir, ": no such ", what, " directory");
  ABM_REQUIRE(fs::is_directory(dir, ec), dir, ": not a directory (expected a ", what, " directory)");
}

void require_regular_file(const std::string& path) {
  struct stat st {};
  ABM_REQUIRE(::stat(path.c_str(), &st) == 0, path, ": cannot open (", std::strerror(errno), ")");
  ABM_REQUIRE(S_ISREG(st.st_mode), path, ": not a regular file");
}

void refuse_special_file(const std::string& path) {
  struct stat st {};
  ABM_REQUIRE(::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode), path, ": not a regular file");
}

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string tmp = cat(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ABM_REQUIRE(fd >= 0, tmp, ": cannot write (", std::strerror(errno), ")");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  ABM_REQUIRE(ok, tmp, ": write failed (", std::strerror(errno), ")");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(cat(path, ": cannot write (", std::strerror(e), ")"));
  }
}

void copy_tokenizer_files(const std::string& src_dir, const std::string& dst_dir) {
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "generation_config.json"}) {
    fs::path src = fs::path(src_dir) / name;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(dst_dir) / name, fs::copy_options::overwrite_existing, ec);
    ABM_REQUIRE(!ec, src.string(), ": cannot copy to ", dst_dir, " (", ec.message(), ")");
  }
}

}  // namespace abm
