#include "abm_fixture.h"

#include <gtest/gtest.h>

#include <fstream>

namespace abm::test {

std::vector<std::vector<int64_t>> abm_fixture_rows() {
  std::vector<std::vector<int64_t>> rows;
  for (int i = 0; i < 24; ++i) {
    std::vector<int64_t> ids = {1};
    for (int j = 1; j < 6 + (i * 5) % 11; ++j) ids.push_back(3 + (i * 13 + j * 7) % 90);
    rows.push_back(ids);
  }
  return rows;
}

void make_abm_fixture(const TempDir& tmp) {
  oracle("make_tiny_model.py " + (tmp / "model"));
  std::ofstream out(tmp / "data.jsonl");
  for (const auto& ids : abm_fixture_rows()) out << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
}

RunResult abm_init(const TempDir& tmp, int ranks, const std::string& out, const std::string& extra) {
  std::string cmd = "mpirun --oversubscribe -np " + std::to_string(ranks) + " " + ABM_BINARY +
                    " abm-init --model " + (tmp / "model") + " --data " + (tmp / "data.jsonl") +
                    " --out " + (tmp / out) + " --lora-targets all-linear --lora-r 4 --seed 5" +
                    " --abm-samples 8 --threads 1 " + extra;
  RunResult r = run(cmd);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
  return r;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

double mean(const nlohmann::json& a) {
  double s = 0;
  for (double x : a) s += x;
  return s / double(a.size());
}

}  // namespace abm::test
