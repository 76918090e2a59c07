#include "model/tokenizer.h"

#include <dlfcn.h>

#include <algorithm>
#include <spawn.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

extern char** environ;

#include "core/check.h"
#include "core/fs.h"

namespace abm {
namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// The shim's C functions, resolved once.
struct Shim {
  const char* (*error)();
  void* (*load)(const char*);
  void (*free_)(void*);
  int (*encode)(void*, const char*, int*, int);
  char* (*decode)(void*, const int*, int);
  int (*id)(void*, int);
};

const Shim& shim() {
  static Shim s = [] {
    // Next to the executable first (installed layout), then the build tree.
    char exe[4096] = {0};
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    std::string dir = n > 0 ? std::string(exe, n) : "";
    dir = dir.substr(0, dir.rfind('/'));
    std::string candidates[] = {dir + "/libabmlora_spm.so", dir + "/../libabmlora_spm.so",
                                ABM_SPM_SHIM};
    void* h = nullptr;
    std::string tried;
    for (auto& c : candidates) {
      tried += " " + c;
      if (exists(c) && (h = ::dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND))) break;
    }
    ABM_REQUIRE(h, "cannot load the SentencePiece shim libabmlora_spm.so (tried", tried,
                "): ", dlerror() ? dlerror() : "not found");
    auto sym = [&](const char* name) {
      void* p = ::dlsym(h, name);
      ABM_REQUIRE(p, "libabmlora_spm.so: missing symbol ", name);
      return p;
    };
    Shim r;
    r.error = reinterpret_cast<const char* (*)()>(sym("abm_spm_error"));
    r.load = reinterpret_cast<void* (*)(const char*)>(sym("abm_spm_load"));
    r.free_ = reinterpret_cast<void (*)(void*)>(sym("abm_spm_free"));
    r.encode = reinterpret_cast<int (*)(void*, const char*, int*, int)>(sym("abm_spm_encode"));
    r.decode = reinterpret_cast<char* (*)(void*, const int*, int)>(sym("abm_spm_decode"));
    r.id = reinterpret_cast<int (*)(void*, int)>(sym("abm_spm_id"));
    return r;
  }();
  return s;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path) {
  ABM_REQUIRE(exists(model_path), model_path, ": tokenizer model not found");
  require_regular_file(model_path);  // SentencePiece's error for a directory names no file
  handle_ = shim().load(model_path.c_str());
  ABM_REQUIRE(handle_, model_path, ": cannot load SentencePiece model: ", shim().error());
}

Tokenizer::~Tokenizer() {
  if (handle_) shim().free_(handle_);
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> ids(text.size() + 16);
  int n = shim().encode(handle_, text.c_str(), ids.data(), static_cast<int>(ids.size()));
  ABM_REQUIRE(n >= 0, path_, ": encode failed: ", shim().error());
  if (n > static_cast<int>(ids.size())) {  // byte fallback can exceed one id per byte
    ids.resize(n);
    shim().encode(handle_, text.c_str(), ids.data(), n);
  }
  std::vector<int64_t> out;
  if (add_bos) out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.begin() + n);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  char* s = shim().decode(handle_, v.data(), static_cast<int>(v.size()));
  ABM_REQUIRE(s, path_, ": decode failed: ", shim().error());
  std::string text(s);
  std::free(s);
  return text;
}

int64_t Tokenizer::vocab_size() const { return shim().id(handle_, 0); }

int64_t Tokenizer::max_piece_bytes() const {
  if (max_piece_bytes_ == 0) {
    int64_t m = 1;
    for (int64_t id = 0, n = vocab_size(); id < n; ++id)
      m = std::max<int64_t>(m, static_cast<int64_t>(decode({id}).size()));
    max_piece_bytes_ = m + 1;
  }
  return max_piece_bytes_;
}
int64_t Tokenizer::bos_id() const { return shim().id(handle_, 1); }
int64_t Tokenizer::eos_id() const { return shim().id(handle_, 2); }

void Tokenizer::train(const std::string& text_file, const std::string& prefix, int vocab_size) {
  ABM_REQUIRE(exists(text_file), text_file, ": no such file");
  // Debian's spm_train, as a child process: the trainer logs through std::cerr, which a
  // privately (DEEPBIND) loaded libstdc++ user cannot do safely inside this process.
  std::vector<std::string> args = {
      "spm_train", "--input=" + text_file, "--model_prefix=" + prefix,
      cat("--vocab_size=", vocab_size), "--model_type=bpe", "--byte_fallback=true",
      "--split_digits=true", "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1",
      "--character_coverage=1.0", "--num_threads=1", "--minloglevel=2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, "spm_train", nullptr, nullptr, argv.data(), environ);
  ABM_REQUIRE(rc == 0, "cannot run spm_train (install Debian's sentencepiece package): ",
              std::strerror(rc));
  int status = 0;
  ABM_SYS_CHECK(::waitpid(pid, &status, 0), "spm_train");
  ABM_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0, text_file,
              ": tokenizer training failed (spm_train exit status ", status, ")");
}

std::string tokenizer_path(const std::string& model_dir) {
  std::string p = model_dir + "/tokenizer.model";
  return exists(p) ? p : "";
}

}  // namespace abm
