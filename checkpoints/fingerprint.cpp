#include "checkpoints/fingerprint.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoints/xxh64.h"
#include "core/check.h"
#include "core/json_text.h"
#include "model/safetensors.h"

namespace abm {
namespace {

uint64_t hash_str(const std::string& s, uint64_t h) { return xxh64(s.data(), s.size() + 1, h); }

// Offset of a safetensors file's data section: 8-byte header length + header.
uint64_t data_start(int fd, const std::string& path) {
  uint64_t n = 0;
  ABM_REQUIRE(::pread(fd, &n, 8, 0) == 8, path, ": cannot read the header length");
  return 8 + n;
}

struct Fd {  // closes on scope exit, also when a read throws
  int fd;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

std::string model_fingerprint(const std::string& dir) {
  const std::string path = dir + "/config.json";
  nlohmann::json config = parse_json(read_small_file(path), path);
  config.erase("_name_or_path");
  config.erase("transformers_version");
  uint64_t h = hash_str(config.dump(), 0);  // nlohmann objects iterate in key order

  std::vector<std::string> files;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(n);
    }
    ::closedir(d);
  }
  ABM_REQUIRE(!files.empty(), dir, ": no *.safetensors files (fingerprint of the base model)");
  std::sort(files.begin(), files.end());

  struct Where {
    const SafetensorsFile* file;
    int fd;
    uint64_t start;
  };
  std::vector<std::unique_ptr<SafetensorsFile>> open;
  std::vector<std::unique_ptr<Fd>> fds;
  std::map<std::string, Where> tensors;  // name order, whatever the sharding
  for (const std::string& f : files) {
    open.push_back(std::make_unique<SafetensorsFile>(dir + "/" + f));
    int fd = ::open(open.back()->path().c_str(), O_RDONLY | O_CLOEXEC);
    ABM_REQUIRE(fd >= 0, open.back()->path(), ": cannot open: ", std::strerror(errno));
    fds.emplace_back(new Fd{fd});
    uint64_t start = data_start(fd, open.back()->path());
    for (const std::string& n : open.back()->names()) tensors[n] = {open.back().get(), fd, start};
  }
  for (const auto& [name, w] : tensors) {
    const TensorEntry& e = w.file->entry(name);
    h = hash_str(name, h);
    h = hash_str(e.dtype, h);
    h = xxh64(e.shape.data(), e.shape.size() * sizeof(int64_t), h);
    const uint64_t len = e.end - e.begin, take = std::min<uint64_t>(64, len);
    for (uint64_t off : {uint64_t(0), (len - take) / 2, len - take}) {
      char buf[64];
      ssize_t got = ::pread(w.fd, buf, take, static_cast<off_t>(w.start + e.begin + off));
      ABM_REQUIRE(got == ssize_t(take), w.file->path(), ": cannot read tensor ", name);
      h = xxh64(buf, take, h);
    }
  }
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace abm
