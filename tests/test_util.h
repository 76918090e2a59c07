// Shared helpers for tests: temp dirs, running commands, the Python oracles, peers.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace abm::test {

// A fresh directory under $TMPDIR, removed at destruction.
struct TempDir {
  std::string path;
  TempDir();
  ~TempDir();
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

struct RunResult {
  int status = -1;     // exit status, or 128 + signal
  std::string output;  // stdout and stderr together
};
RunResult run(const std::string& command);  // via /bin/sh -c

// Runs a tests/ref/*.py oracle with Debian's python3; fails the test on a non-zero exit.
std::string oracle(const std::string& script_and_args);

// Python of the venv with transformers + peft (launch/oracle_venv.sh), or "" if missing.
std::string hf_python();

// ../shared/peers/NAME next to the source tree, or "" if absent.
std::string peer(const std::string& name);

// Max |a - b| over all elements (as fp32).
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

// n pre-tokenized rows ({"input_ids": [...]}, vocab < 93) for the tiny model; row i's
// tokens depend on i + offset; `len` 0 = varied lengths 6..16.
void write_token_rows(const std::string& path, int n, int offset, int len = 0);
// One JSON value per line (metrics.jsonl).
std::vector<nlohmann::json> read_jsonl(const std::string& path);

}  // namespace abm::test
