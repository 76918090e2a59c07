// Shared by the ABM tests: the tiny model (3 layers, vocab 97, tests/ref/make_tiny_model.py)
// with 24 pre-tokenized rows, and `abmlora abm-init` runs under real mpirun.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "test_util.h"

namespace abm::test {

// tmp/model (tiny model) and tmp/data.jsonl (24 rows of input_ids).
void make_abm_fixture(const TempDir& tmp);
// The fixture's rows, in file order.
std::vector<std::vector<int64_t>> abm_fixture_rows();

// `mpirun -np RANKS abmlora abm-init` on the fixture into tmp/out (r 4 on all-linear,
// seed 5, 8 samples, 1 thread); expects success.
RunResult abm_init(const TempDir& tmp, int ranks, const std::string& out, const std::string& extra);

nlohmann::json read_json(const std::string& path);
double mean(const nlohmann::json& a);

}  // namespace abm::test
