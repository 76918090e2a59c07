// Shared by the libFuzzer drivers: the parsers under test read files by path, so each
// input is written to one file in a private directory (in /dev/shm when it exists: no
// disk I/O per execution) and the parser opens that. Nothing in the product is refactored
// for the fuzzers.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace abm::fuzz {

// The private directory of this process: /dev/shm/abm-fuzz-<pid> (or $TMPDIR/...).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    struct stat st {};
    std::string base = ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)
                           ? "/dev/shm"
                           : (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
    std::string d = base + "/abm-fuzz-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
  }();
  return dir;
}

// Writes the input to scratch_dir()/name (replacing it) and returns the path. Aborts if
// the file cannot be written: that is a broken harness, not a finding.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

// Removes the input file and the scratch directory at exit (libFuzzer ends through
// exit()). Define one at namespace scope in each driver, naming the driver's input file.
struct ScratchCleanup {
  std::string dir, file;
  explicit ScratchCleanup(const std::string& name)
      : dir(scratch_dir()), file(scratch_dir() + "/" + name) {}
  ~ScratchCleanup() {
    ::unlink(file.c_str());
    ::rmdir(dir.c_str());
  }
};

}  // namespace abm::fuzz
