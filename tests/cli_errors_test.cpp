// Every bad-input path of the CLI (docs/usage.md): the real `abmlora` binary, run as a
// subprocess on broken model directories, llama2.c files, INI files and options, must
// exit with status 2 and print ONE line "abmlora: error: ..." naming the file/option and
// the problem, with no C++ backtrace. Under mpirun a bad input on one rank must end the
// job (no hang) and print the reason once. Positive controls keep the table honest.
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using abm::test::RunResult;

namespace {

std::unique_ptr<abm::test::TempDir> g_dir;
fs::path g_tmp;  // fixtures: good/ (make_tiny_model.py), l.bin (make_tiny_llama2c.py)

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

// A fresh copy of the good model as T/name.
fs::path copy_good(const std::string& name) {
  fs::path d = g_tmp / name;
  fs::remove_all(d);
  fs::copy(g_tmp / "good", d, fs::copy_options::recursive);
  return d;
}

void edit_config(const fs::path& dir, const std::function<void(json&)>& edit) {
  json j = json::parse(slurp(dir / "config.json"));
  edit(j);
  spit(dir / "config.json", j.dump(2));
}

// Rewrites a safetensors file (no holes, offsets recomputed): `edit` may change a tensor's
// header entry and bytes, or return false to drop it.
using TensorEdit = std::function<bool(const std::string&, json&, std::string&)>;
void rewrite_safetensors(const fs::path& file, const TensorEdit& edit) {
  std::string raw = slurp(file);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  json h = json::parse(raw.substr(8, n)), out = json::object();
  std::string data;
  for (auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      out[name] = e;
      continue;
    }
    uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
    std::string bytes = raw.substr(8 + n + b, end - b);
    json entry = e;
    if (!edit(name, entry, bytes)) continue;
    entry["data_offsets"] = {data.size(), data.size() + bytes.size()};
    data += bytes;
    out[name] = entry;
  }
  std::string hs = out.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  uint64_t m = hs.size();
  spit(file, std::string(reinterpret_cast<char*>(&m), 8) + hs + data);
}

struct Case {
  std::string name;
  std::function<void()> setup;  // builds the bad input under T
  std::string cmd;              // {B} = abmlora, {T} = temp dir, {MPI} = mpirun ...
  int status;                   // expected exit status (0 = positive control)
  std::vector<std::string> expect;  // substrings of the error line (or of the output if 0)
  std::string absent = "";          // a path under T that must not exist afterwards
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const char* kGen = "{B} generate --max-new-tokens 2 --model ";
const char* kRank = " -np 1 {B} generate --max-new-tokens 2 --model ";  // one MPMD app context
const std::string kShape = "model.layers.0.self_attn.k_proj.weight";  // [20, 60]

std::vector<Case> cases() {
  auto model = [](const std::string& name, std::function<void(const fs::path&)> corrupt) {
    return [=] { corrupt(copy_good(name)); };
  };
  auto none = [] {};
  auto st = [](const fs::path& d) { return d / "model.safetensors"; };
  auto no_field = model("no_field", [](auto d) { edit_config(d, [](json& j) { j.erase("hidden_size"); }); });
  auto trunc = model("trunc", [=](auto d) { fs::resize_file(st(d), fs::file_size(st(d)) / 2); });
  auto long_header = model("long_header", [=](auto d) {
    std::fstream f(st(d), std::ios::in | std::ios::out | std::ios::binary);
    uint64_t huge = uint64_t(1) << 40;
    f.write(reinterpret_cast<char*>(&huge), 8);
  });
  auto ini = [](const std::string& name, const std::string& text) {
    return [=] { spit(g_tmp / name, text); };
  };
  return {
      // Positive controls: the same commands on good input succeed.
      {"generate_ok", none, kGen + std::string("{T}/good"), 0, {"generate: {T}/good"}},
      {"inspect_ok", none, "{B} inspect {T}/good", 0, {"parameters 94860"}},
      {"import_ok", none, "{B} import-llama2c {T}/l.bin {T}/imported", 0, {"-> {T}/imported"}},
      {"config_ok", ini("good.ini", "max-new-tokens = 2\n"),
       "{B} generate --model {T}/good --config {T}/good.ini", 0, {"generate: {T}/good"}},
      // config.json
      {"no_config", model("no_config", [](auto d) { fs::remove(d / "config.json"); }),
       kGen + std::string("{T}/no_config"), 2, {"{T}/no_config/config.json", "No such file"}},
      {"config_missing_field", no_field, kGen + std::string("{T}/no_field"), 2,
       {"{T}/no_field/config.json", "missing field", "hidden_size"}},
      {"config_bad_json", model("bad_json", [](auto d) { spit(d / "config.json", "{\"hidden_size\": 60,"); }),
       kGen + std::string("{T}/bad_json"), 2, {"{T}/bad_json/config.json", "not valid JSON"}},
      {"rope_scaling_yarn",
       model("yarn", [](auto d) { edit_config(d, [](json& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 2}}; }); }),
       kGen + std::string("{T}/yarn"), 2, {"{T}/yarn/config.json", "rope_scaling", "yarn"}},
      {"no_such_dir", none, kGen + std::string("{T}/nonexistent"), 2,
       {"{T}/nonexistent", "no such model directory"}},
      // safetensors
      {"missing_tensor",
       model("no_tensor", [=](auto d) {
         rewrite_safetensors(st(d), [](auto& n, auto&, auto&) { return n != "model.layers.1.mlp.up_proj.weight"; });
       }),
       kGen + std::string("{T}/no_tensor"), 2, {"{T}/no_tensor", "model.layers.1.mlp.up_proj.weight", "not found"}},
      {"wrong_shape",
       model("bad_shape", [=](auto d) {
         rewrite_safetensors(st(d), [](auto& n, json& e, std::string& b) {
           if (n == kShape) e["shape"] = {10, 60}, b.resize(b.size() / 2);
           return true;
         });
       }),
       kGen + std::string("{T}/bad_shape"), 2,
       {"{T}/bad_shape/model.safetensors", kShape, "has shape [10, 60]", "expected [20, 60]"}},
      {"truncated", trunc, kGen + std::string("{T}/trunc"), 2, {"{T}/trunc/model.safetensors", "truncated"}},
      {"header_past_eof", long_header, kGen + std::string("{T}/long_header"), 2,
       {"{T}/long_header/model.safetensors", "runs past end of file"}},
      {"unsupported_dtype",
       model("fp8", [=](auto d) {
         rewrite_safetensors(st(d), [](auto& n, json& e, std::string& b) {
           if (n == "model.norm.weight") e["dtype"] = "F8_E4M3", e["shape"] = {b.size()};  // 1 byte each
           return true;
         });
       }),
       kGen + std::string("{T}/fp8"), 2,
       {"{T}/fp8/model.safetensors", "model.norm.weight", "unsupported dtype F8_E4M3"}},
      {"no_safetensors", model("no_st", [=](auto d) { fs::remove(st(d)); }), kGen + std::string("{T}/no_st"), 2,
       {"{T}/no_st", "no model.safetensors"}},
      // inspect reads config + headers only
      {"inspect_no_such_dir", none, "{B} inspect {T}/nonexistent", 2, {"{T}/nonexistent", "no such model directory"}},
      {"inspect_missing_field", no_field, "{B} inspect {T}/no_field", 2, {"{T}/no_field/config.json", "missing field"}},
      {"inspect_truncated", trunc, "{B} inspect {T}/trunc", 2, {"{T}/trunc/model.safetensors", "truncated"}},
      {"inspect_header_past_eof", long_header, "{B} inspect {T}/long_header", 2, {"runs past end of file"}},
      // options and --config
      {"ini_not_key_value", ini("bad_line.ini", "max-new-tokens = 2\nthis is not key value\n"),
       "{B} generate --model {T}/good --config {T}/bad_line.ini", 2, {"--config {T}/bad_line.ini", "invalid line"}},
      {"ini_unknown_key", ini("bad_key.ini", "max-new-tokens = 2\nfrobnicate = 3\n"),
       "{B} generate --model {T}/good --config {T}/bad_key.ini", 2,
       {"--config {T}/bad_key.ini", "unrecognised option", "frobnicate"}},
      {"ini_missing", none, "{B} generate --model {T}/good --config {T}/nonexistent.ini", 2,
       {"--config {T}/nonexistent.ini", "cannot open"}},
      {"unknown_option", none, "{B} generate --model {T}/good --frobnicate", 2,
       {"unrecognised option", "--frobnicate"}},
      {"bad_option_value", none, "{B} generate --model {T}/good --max-new-tokens abc", 2,
       {"--max-new-tokens", "abc", "invalid"}},
      {"unknown_command", none, "{B} frobnicate", 2, {"unknown command", "frobnicate"}},
      // llama2.c import: nothing is written on failure
      {"llama2c_missing", none, "{B} import-llama2c {T}/nonexistent.bin {T}/out_missing", 2,
       {"{T}/nonexistent.bin", "No such file"}, "out_missing"},
      {"llama2c_truncated",
       [] { spit(g_tmp / "half.bin", slurp(g_tmp / "l.bin").substr(0, fs::file_size(g_tmp / "l.bin") / 2)); },
       "{B} import-llama2c {T}/half.bin {T}/out_half", 2, {"{T}/half.bin", "truncated llama2.c checkpoint"},
       "out_half"},
      // Two ranks (Open MPI MPMD): one bad rank ends the job, the reason is printed once.
      {"mpi_ok", none, "{MPI} -np 2 {B} generate --max-new-tokens 2 --model {T}/good", 0, {"generate: {T}/good"}},
      {"mpi_bad_rank1", no_field, "{MPI}" + std::string(kRank) + "{T}/good :" + kRank + "{T}/no_field", 2,
       {"[rank 1]", "{T}/no_field/config.json", "missing field"}},
      {"mpi_bad_rank0", no_field, "{MPI}" + std::string(kRank) + "{T}/no_field :" + kRank + "{T}/good", 2,
       {"{T}/no_field/config.json", "missing field"}},
      {"mpi_bad_option_all_ranks", none, "{MPI} -np 2 {B} generate --model {T}/good --frobnicate", 2,
       {"unrecognised option", "--frobnicate"}},
      {"abm_one_stage_batch_split", none,
       "{MPI} -np 2 {B} abm-init --model {T}/good --data {T}/none.jsonl --abm-stages 1", 2,
       {"--abm-batch 1 is not a multiple of --abm-micro-batch 1 x 2 rank(s) sharing one ABM stage",
        "use --abm-batch 2"}},
      {"abm_teacher_unknown", none,
       "{B} train --model {T}/good --data {T}/none.jsonl --steps 1 --init abm --abm-teacher student", 2,
       {"--abm-teacher \"student\": valid values are base and task"}},
      {"abm_teacher_task_and_adapter", none,
       "{B} train --model {T}/good --data {T}/none.jsonl --steps 1 --init abm --abm-teacher task "
       "--teacher-adapter {T}/good", 2,
       {"--abm-teacher task trains its own teacher and --teacher-adapter gives one"}},
      {"abm_init_task_teacher", none,
       "{B} abm-init --model {T}/good --data {T}/none.jsonl --abm-teacher task", 2,
       {"--abm-teacher task trains the teacher on the task first", "use train --init abm"}},
      {"comm_timeout_malformed", none, "env ABM_COMM_TIMEOUT_S=abc {B} inspect {T}/good", 2,
       {"ABM_COMM_TIMEOUT_S must be a number of seconds >= 0", "'abc'"}},
      {"mpi_comm_timeout_negative", none,
       "env ABM_COMM_TIMEOUT_S=-1 {MPI} -np 2 {B} inspect {T}/good", 2,
       {"ABM_COMM_TIMEOUT_S must be a number of seconds >= 0", "'-1'"}},
      {"abm_stages_not_dividing_ranks", none,
       "{MPI} -np 2 {B} abm-init --model {T}/good --data {T}/none.jsonl --abm-stages 3", 2,
       {"--abm-stages 3 must divide the number of ranks (2); valid: 1, 2"}},
  };
}

std::string subst(std::string s) {
  const std::pair<std::string, std::string> vars[] = {
      {"{B}", ABM_BINARY}, {"{T}", g_tmp.string()}, {"{MPI}", "mpirun --oversubscribe"}};
  for (auto& [k, v] : vars)
    for (size_t p; (p = s.find(k)) != std::string::npos;) s.replace(p, k.size(), v);
  return s;
}

class CliErrors : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    g_dir = std::make_unique<abm::test::TempDir>();
    g_tmp = g_dir->path;
    abm::test::oracle("make_tiny_model.py " + g_tmp.string() + "/good");
    abm::test::oracle("make_tiny_llama2c.py " + g_tmp.string() + "/l.bin");
  }
  static void TearDownTestSuite() { g_dir.reset(); }
};

TEST_P(CliErrors, ExitStatusAndOneLineMessage) {
  const Case& c = GetParam();
  c.setup();
  RunResult r = abm::test::run("timeout 120 " + subst(c.cmd));
  SCOPED_TRACE(subst(c.cmd) + "\n--- output ---\n" + r.output);
  ASSERT_NE(r.status, 124) << "timed out (hang?)";
  EXPECT_EQ(r.status, c.status);
  for (const char* bt : {"frame #", "Exception raised from", "terminate called", "what():",
                         "Traceback", "core dumped", "Segmentation"})
    EXPECT_EQ(r.output.find(bt), std::string::npos) << "backtrace/crash marker: " << bt;

  std::vector<std::string> errors;
  std::istringstream lines(r.output);
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("abmlora: error:", 0) == 0) errors.push_back(l);
  if (c.status == 0) {
    EXPECT_TRUE(errors.empty());
    for (auto& s : c.expect) EXPECT_NE(r.output.find(subst(s)), std::string::npos) << "missing: " << subst(s);
  } else {
    ASSERT_EQ(errors.size(), 1u) << "expected exactly one \"abmlora: error:\" line";
    for (auto& s : c.expect)
      EXPECT_NE(errors[0].find(subst(s)), std::string::npos) << "error line lacks: " << subst(s);
  }
  if (!c.absent.empty()) EXPECT_FALSE(fs::exists(g_tmp / c.absent)) << c.absent << " was written";
}

INSTANTIATE_TEST_SUITE_P(Cli, CliErrors, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
