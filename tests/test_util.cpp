#include "test_util.h"

#include <fstream>

#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace abm::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/abmlora-test-XXXXXX";
  char* p = ::mkdtemp(tmpl.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  path = p;
}

TempDir::~TempDir() {
  if (!std::getenv("ABM_KEEP_TMP")) std::system(("rm -rf '" + path + "'").c_str());
}

RunResult run(const std::string& command) {
  RunResult r;
  FILE* f = ::popen((command + " 2>&1").c_str(), "r");
  if (!f) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) r.output.append(buf.data(), n);
  int st = ::pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string oracle(const std::string& script_and_args) {
  RunResult r = run(std::string(ABM_PYTHON) + " " + ABM_SOURCE_DIR + "/tests/ref/" + script_and_args);
  EXPECT_EQ(r.status, 0) << "oracle failed: " << script_and_args << "\n" << r.output;
  return r.output;
}

std::string hf_python() {
  const char* env = std::getenv("ABM_ORACLE_VENV");
  std::string venv = env ? env : std::string(ABM_SOURCE_DIR) + "/build/oracle-venv";
  std::string py = venv + "/bin/python";
  struct stat st;
  if (::stat(py.c_str(), &st) != 0) return "";
  if (run(py + " -c 'import transformers, peft'").status != 0) return "";
  return py;
}

std::string peer(const std::string& name) {
  std::string p = std::string(ABM_SOURCE_DIR) + "/../shared/peers/" + name;
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? p : "";
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

void write_token_rows(const std::string& path, int n, int offset, int len) {
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    int size = len ? len : 6 + (i * 5) % 11;
    nlohmann::json ids = nlohmann::json::array({1});
    for (int j = 1; j < size; ++j) ids.push_back(3 + ((i + offset) * 3 + j * 7) % 90);
    out << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
  }
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> v;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
  return v;
}

}  // namespace abm::test
