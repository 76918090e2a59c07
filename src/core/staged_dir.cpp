#include "core/staged_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/check.h"
#include "core/fs.h"

namespace abm {
namespace fs = std::filesystem;

namespace {
bool same_inode(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}
std::string trimmed(std::string d) {
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}
}  // namespace

StagedDir::StagedDir(std::string final_dir, const std::string& option, bool force,
                     const std::vector<std::string>& inputs)
    : final_(trimmed(std::move(final_dir))) {
  for (auto& in : inputs)
    ABM_REQUIRE(!same_inode(final_, in), option, " ", final_, ": is the input directory ", in,
                " (write the output somewhere else)");
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    ABM_REQUIRE(fs::is_directory(final_, ec), option, " ", final_, ": exists and is not a directory");
    ABM_REQUIRE(force || fs::is_empty(final_, ec), option, " ", final_,
                ": directory exists and is not empty (use --force to replace it)");
  }
  staging_ = cat(final_, ".staging.", ::getpid());
  fs::remove_all(staging_, ec);
  make_dirs(staging_);
}

void StagedDir::commit() {
  std::error_code ec;
  std::string old;
  if (fs::exists(final_, ec)) {
    old = cat(final_, ".old.", ::getpid());
    ABM_SYS_CHECK(std::rename(final_.c_str(), old.c_str()), final_, " -> ", old);
  }
  ABM_SYS_CHECK(std::rename(staging_.c_str(), final_.c_str()), staging_, " -> ", final_);
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

}  // namespace abm
