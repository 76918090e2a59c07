#include "core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

#include "core/check.h"
#include "core/fs.h"
#include "core/runtime.h"

namespace abm {
namespace {

std::string owner_text() {
  const char* job = std::getenv("SLURM_JOB_ID");
  char when[32] = "?";
  std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return cat("host ", Runtime::host(), ", pid ", ::getpid(),
             job ? cat(", Slurm job ", job) : std::string(), ", since ", when);
}

}  // namespace

RunLock::RunLock(const std::string& dir) {
  const char* off = std::getenv("ABM_RUN_LOCK");
  if (off && std::string(off) == "off") return;
  make_dirs(dir);
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ABM_REQUIRE(fd_ >= 0, path, ": cannot open the run lock (", std::strerror(errno), ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[256] = {0};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, n) : "another process";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    ABM_REQUIRE(e != EWOULDBLOCK, dir, " is in use by another job (", holder,
                "); wait for it to end or choose another --out");
    throw Error(cat(path, ": cannot lock (", std::strerror(e), "); on Lustre mount with -o flock, "
                    "or set ABM_RUN_LOCK=off if no other job can use this directory"));
  }
  const std::string text = owner_text() + "\n";
  bool ok = ::ftruncate(fd_, 0) == 0 &&
            ::pwrite(fd_, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
  ABM_REQUIRE(ok, path, ": cannot write the run lock (", std::strerror(errno), ")");
}

RunLock& RunLock::operator=(RunLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace abm
