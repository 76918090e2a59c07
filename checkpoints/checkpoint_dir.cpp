#include "checkpoints/checkpoint_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "checkpoints/checkpoint_file.h"
#include "core/fs.h"
#include "core/log.h"

namespace abm {
namespace {

constexpr const char* kPrefix = "ckpt-";
constexpr const char* kSuffix = ".h5";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
  ::closedir(d);
  return names;
}

// A rename is durable only once the directory entry itself is on disk.
void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ABM_SYS_CHECK(fd, "open directory ", dir);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  errno = e;
  if (rc != 0 && e == EINVAL) return;  // a file system without directory fsync (some FUSE/NFS)
  ABM_SYS_CHECK(rc, "fsync directory ", dir);
}

void write_latest(const std::string& dir, const std::string& name) {
  const std::string tmp = dir + "/latest.tmp", path = dir + "/latest";
  const std::string text = name + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ABM_SYS_CHECK(fd, "open ", tmp);
  bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
  int e = errno;
  ::close(fd);
  errno = e;
  ABM_SYS_CHECK(ok ? 0 : -1, "write ", tmp);
  ABM_SYS_CHECK(std::rename(tmp.c_str(), path.c_str()), "rename ", tmp, " -> ", path);
  fsync_dir(dir);
}

// Deletes all but the newest `keep` checkpoints at or below `step`. Files above it belong
// to an abandoned continuation (a resume from an older checkpoint) and are overwritten as
// the run passes them; `latest` already ignores them.
void rotate(const std::string& dir, int64_t step, int64_t keep) {
  if (keep <= 0) return;
  int64_t kept = 0;
  for (const CheckpointFile& c : list_checkpoints(dir)) {
    if (c.step > step || kept++ < keep) continue;
    // The new checkpoint is safe already: a failed delete is worth a warning, not the run.
    if (::unlink(c.path.c_str()) != 0)
      log_line(cat("checkpoints: warning: cannot delete ", c.path, ": ", std::strerror(errno)));
  }
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s%08lld%s", kPrefix, static_cast<long long>(step), kSuffix);
  return buf;
}

int64_t checkpoint_step(const std::string& name) {
  const size_t p = std::string(kPrefix).size(), s = std::string(kSuffix).size();
  if (name.size() < p + 8 + s || name.compare(0, p, kPrefix) != 0 || !ends_with(name, kSuffix))
    return -1;
  const std::string digits = name.substr(p, name.size() - p - s);
  if (digits.empty() || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoll(digits);
}

std::vector<CheckpointFile> list_checkpoints(const std::string& dir) {
  std::vector<CheckpointFile> out;
  for (const std::string& name : dir_entries(dir)) {
    int64_t step = checkpoint_step(name);
    if (step >= 0) out.push_back({step, dir + "/" + name});
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointFile& a, const CheckpointFile& b) { return a.step > b.step; });
  return out;
}

std::string read_latest(const std::string& dir) {
  std::ifstream in(dir + "/latest");
  std::string name;
  if (!in || !std::getline(in, name) || checkpoint_step(name) < 0) return "";
  return name;
}

std::string write_checkpoint(const std::string& dir, const CheckpointState& s, int64_t keep,
                             const std::function<void()>& before_publish) {
  make_dirs(dir);
  // *.tmp files are never read; ones left by a killed writer are only wasted space.
  for (const std::string& name : dir_entries(dir))
    if (name.rfind(kPrefix, 0) == 0 && ends_with(name, std::string(kSuffix) + ".tmp"))
      ::unlink((dir + "/" + name).c_str());
  const std::string name = checkpoint_name(s.step);
  const std::string path = dir + "/" + name, tmp = path + ".tmp";
  try {
    write_checkpoint_file(tmp, s);
    if (before_publish) before_publish();
    ABM_SYS_CHECK(std::rename(tmp.c_str(), path.c_str()), "rename ", tmp, " -> ", path);
    fsync_dir(dir);
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    throw Error(cat(dir, ": cannot write the checkpoint of step ", s.step, " (", e.what(),
                    "); the previous checkpoint is still the latest"));
  }
  write_latest(dir, name);
  rotate(dir, s.step, keep);
  return path;
}

}  // namespace abm
