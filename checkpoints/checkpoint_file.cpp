#include "checkpoints/checkpoint_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <optional>
#include <regex>
#include <type_traits>

#include "checkpoints/h5_io.h"
#include "checkpoints/state_fields.h"
#include "core/progress.h"
#include "core/json_text.h"

namespace abm {
namespace {

// "model.layers.0.self_attn.q_proj.lora_A" -> {"model.layers.0.self_attn.q_proj", "lora_A"}.
std::pair<std::string, std::string> split_name(const std::string& name) {
  size_t dot = name.rfind('.');
  ABM_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < name.size() &&
                name.find('/') == std::string::npos,
            "tensor name \"", name, "\" is not <module>.<leaf>");
  return {name.substr(0, dot), name.substr(dot + 1)};
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Checkpoints from this size on (a 7B all-linear r 16 adapter with its moments is ~0.5 GB)
// report their tensors as they go: a write of many seconds should not look like a hang.
constexpr int64_t kProgressBytes = int64_t(256) << 20;

// Counts written tensors (trainable + both moments) when the checkpoint is large.
struct WriteProgress {
  std::optional<Progress> bar;
  int64_t done = 0;
  void tick() {
    if (bar) bar->update(++done);
  }
};

// Writes tensors under root/<module>/<leaf>, one group per module, in order.
void put_named(hid_t root, const NamedTensors& tensors, WriteProgress& progress) {
  std::unique_ptr<H5Id> g;
  std::string last;
  for (const auto& [name, t] : tensors) {
    auto [module, leaf] = split_name(name);
    if (module != last) {  // a module's tensors must be adjacent, or reading reorders them
      ABM_CHECK(!has_child(root, module), "tensors of module ", module, " are not adjacent");
      g = std::make_unique<H5Id>(create_group(root, module), H5Gclose);
      last = module;
    }
    put_tensor(*g, leaf, t);
    progress.tick();
  }
}

// Attribute writers/readers for the visitors of state_fields.h.
void write_attr(hid_t obj, const char* name, int64_t v) { put_attr(obj, name, v); }
void write_attr(hid_t obj, const char* name, uint64_t v) { put_attr(obj, name, v); }
void write_attr(hid_t obj, const char* name, double v) { put_attr(obj, name, v); }
void write_attr(hid_t obj, const char* name, const std::string& v) { put_attr(obj, name, v); }
void read_attr(hid_t obj, const char* name, int64_t& v) { v = get_i64(obj, name); }
void read_attr(hid_t obj, const char* name, uint64_t& v) { v = get_u64(obj, name); }
void read_attr(hid_t obj, const char* name, double& v) { v = get_f64(obj, name); }
void read_attr(hid_t obj, const char* name, std::string& v) { v = get_str(obj, name); }

auto attr_writer(hid_t obj) {
  return [obj](const char* name, const auto& v, bool) { write_attr(obj, name, v); };
}
auto attr_reader(hid_t obj) {
  return [obj](const char* name, auto& v, bool required) {
    if (required || has_attr(obj, name)) read_attr(obj, name, v);
  };
}

void write_root_attrs(hid_t f, const CheckpointState& s) {
  put_attr(f, "format", std::string(kCheckpointFormat));
  CheckpointState stamped = s;  // tensors are shared handles: this copies a few strings
  stamped.format_version = kCheckpointVersion;
  stamped.created = utc_now();
  stamped.tool_version = ABM_VERSION;
  visit_root_fields(stamped, attr_writer(f));
  put_attr(f, "trainable", std::string(s.lora ? "lora" : "full"));
  put_attr(f, "lora_config", s.lora ? s.lora->to_json().dump() : std::string());
  seal_attrs(f);
}

void write_optimizer(hid_t f, const CheckpointState& s, WriteProgress& progress) {
  const OptimizerState& o = s.optimizer;
  ABM_CHECK(o.exp_avg.size() == s.trainable.size() && o.exp_avg_sq.size() == s.trainable.size(),
            "optimizer has ", o.exp_avg.size(), "/", o.exp_avg_sq.size(), " moments for ",
            s.trainable.size(), " tensors");
  H5Id g(create_group(f, "optimizer"), H5Gclose);
  visit_optimizer_fields(o, attr_writer(g));
  seal_attrs(g);
  std::map<std::string, std::unique_ptr<H5Id>> groups;
  for (size_t i = 0; i < s.trainable.size(); ++i) {
    auto [module, leaf] = split_name(s.trainable[i].first);
    auto& mg = groups[module];
    if (!mg) mg = std::make_unique<H5Id>(create_group(g, module), H5Gclose);
    put_tensor(*mg, leaf + ".exp_avg", o.exp_avg[i]);
    put_tensor(*mg, leaf + ".exp_avg_sq", o.exp_avg_sq[i]);
    progress.tick();
    progress.tick();
  }
}

void write_abm(hid_t f, const AbmProvenance& a) {
  H5Id g(create_group(f, "abm"), H5Gclose);
  visit_abm_fields(a, attr_writer(g));
  seal_attrs(g);
  visit_abm_series(a, [&](const char* name, const auto& v, bool) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    put_tensor(g, name, at::tensor(at::ArrayRef<T>(v), at::CppTypeToScalarType<T>::value)
                            .reshape({int64_t(v.size())}));
  });
}

// --- reading ---------------------------------------------------------------------------

struct Reader {
  hid_t file;
  uint64_t max_bytes;  // file size: bounds every allocation

  H5Id group(hid_t parent, const std::string& name, const std::string& where) const {
    ABM_REQUIRE(has_child(parent, name), where, ": missing");
    return H5Id(ABM_H5_CHECK(H5Gopen2(parent, name.c_str(), H5P_DEFAULT)), H5Gclose);
  }
  at::Tensor tensor(hid_t g, const std::string& name, const std::string& where) const {
    return get_tensor(g, name, max_bytes, where);
  }
};

NamedTensors read_trainable(const Reader& r, const std::string& root_name) {
  const std::string where = "/" + root_name;
  H5Id root = r.group(r.file, root_name, where);
  NamedTensors out;
  for (const std::string& module : children(root)) {
    H5Id g = r.group(root, module, where + "/" + module);
    for (const std::string& leaf : children(g))
      out.emplace_back(module + "." + leaf, r.tensor(g, leaf, where + "/" + module));
  }
  ABM_REQUIRE(!out.empty(), where, ": no tensors");
  return out;
}

OptimizerState read_optimizer(const Reader& r, const NamedTensors& trainable) {
  H5Id g = r.group(r.file, "optimizer", "/optimizer");
  verify_attrs(g, "/optimizer");
  OptimizerState o;
  visit_optimizer_fields(o, attr_reader(g));
  ABM_REQUIRE(o.step >= 0, "/optimizer: negative step ", o.step);
  size_t modules = 0;
  std::string last;
  for (const auto& [name, t] : trainable) {
    auto [module, leaf] = split_name(name);
    if (module != last) ++modules, last = module;
    const std::string where = "/optimizer/" + module;
    H5Id mg = r.group(g, module, where);
    for (auto* moments : {&o.exp_avg, &o.exp_avg_sq}) {
      std::string key = leaf + (moments == &o.exp_avg ? ".exp_avg" : ".exp_avg_sq");
      at::Tensor m = r.tensor(mg, key, where);
      ABM_REQUIRE(m.sizes() == t.sizes() && m.scalar_type() == at::kFloat, where, "/", key,
                  ": shape ", m.sizes(), " ", m.scalar_type(), ", expected ", t.sizes(), " F32");
      moments->push_back(m);
    }
  }
  ABM_REQUIRE(children(g).size() == modules, "/optimizer: ", children(g).size(),
              " modules, the trainable set has ", modules);
  return o;
}

LrSchedule read_scheduler(const Reader& r) {
  H5Id g = r.group(r.file, "scheduler", "/scheduler");
  verify_attrs(g, "/scheduler");
  LrSchedule s;
  visit_scheduler_fields(s, attr_reader(g));
  return s;
}

AbmProvenance read_abm(const Reader& r) {
  H5Id g = r.group(r.file, "abm", "/abm");
  verify_attrs(g, "/abm");
  AbmProvenance a;
  visit_abm_fields(a, attr_reader(g));
  visit_abm_series(a, [&](const char* name, auto& v, bool) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    const at::ScalarType want = at::CppTypeToScalarType<T>::value;
    at::Tensor t = r.tensor(g, name, "/abm");
    ABM_REQUIRE(t.scalar_type() == want && t.dim() == 1, "/abm/", name, ": not 1-D ", want);
    v.assign(t.data_ptr<T>(), t.data_ptr<T>() + t.numel());
  });
  return a;
}

CheckpointState read_all(const Reader& r) {
  hid_t f = r.file;
  ABM_REQUIRE(has_attr(f, "format") && get_str(f, "format") == kCheckpointFormat,
              "not an abmlora checkpoint (no format=\"", kCheckpointFormat, "\" attribute)");
  CheckpointState s;
  s.format_version = get_i64(f, "format_version");
  ABM_REQUIRE(s.format_version >= 1 && s.format_version <= kCheckpointVersion, "format version ",
              s.format_version, " (this abmlora reads versions 1..", kCheckpointVersion, ")");
  verify_attrs(f, "/");
  visit_root_fields(s, attr_reader(f));
  std::string trainable = get_str(f, "trainable");
  ABM_REQUIRE(trainable == "lora" || trainable == "full", "unknown trainable kind \"", trainable, "\"");
  if (trainable == "lora")
    s.lora = LoraConfig::from_json(parse_json(get_str(f, "lora_config"), "lora_config"), "lora_config");
  ABM_REQUIRE(s.step >= 0 && s.samples_seen >= 0 && s.world_size >= 1, "bad progress attributes");
  s.trainable = read_trainable(r, s.lora ? "adapter" : "params");
  s.optimizer = read_optimizer(r, s.trainable);
  s.scheduler = read_scheduler(r);
  H5Id rng = r.group(f, "rng", "/rng");
  verify_attrs(rng, "/rng");
  visit_rng_fields(s, attr_reader(rng));
  for (const std::string& name : children(rng)) s.rng.emplace_back(name, r.tensor(rng, name, "/rng"));
  if (has_child(f, "abm")) s.abm = read_abm(r);
  return s;
}

// "…/h5_io.cpp:123 [0@host] H5Dread(…) failed: …" -> "H5Dread(…) failed: …": the reader's
// messages are for users, who need the reason, not our source line.
std::string user_reason(const std::string& what) {
  static const std::regex prefix(R"(^\S+:\d+ \[[^\]]*\] )");
  return std::regex_replace(what, prefix, "", std::regex_constants::format_first_only);
}

}  // namespace

int64_t state_bytes(const CheckpointState& s) {
  int64_t n = 0;
  for (auto& [name, t] : s.trainable) n += t.numel() * t.element_size();
  for (auto* v : {&s.optimizer.exp_avg, &s.optimizer.exp_avg_sq})
    for (auto& t : *v) n += t.numel() * t.element_size();
  for (auto& [name, t] : s.rng) n += t.numel() * t.element_size();
  return n;
}

void write_checkpoint_file(const std::string& path, const CheckpointState& s) {
  H5Quiet quiet;
  ABM_CHECK(!s.trainable.empty(), "checkpoint of step ", s.step, " has no trainable tensors");
  {
    H5Id fapl(ckpt_fapl(), H5Pclose), fcpl(ckpt_fcpl(), H5Pclose);
    H5Id f(ABM_H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, fapl)), H5Fclose);
    write_root_attrs(f, s);
    WriteProgress progress;
    if (state_bytes(s) >= kProgressBytes)
      progress.bar = Progress::pass(3 * int64_t(s.trainable.size()),
                                    cat("checkpoint: step ", s.step, " "), "tensor");
    H5Id tg(create_group(f, s.lora ? "adapter" : "params"), H5Gclose);
    put_named(tg, s.trainable, progress);
    write_optimizer(f, s, progress);
    if (progress.bar) progress.bar->finish();
    H5Id sg(create_group(f, "scheduler"), H5Gclose);
    visit_scheduler_fields(s.scheduler, attr_writer(sg));
    seal_attrs(sg);
    H5Id rg(create_group(f, "rng"), H5Gclose);
    visit_rng_fields(s, attr_writer(rg));
    seal_attrs(rg);
    for (const auto& [name, t] : s.rng) put_tensor(rg, name, t);
    if (s.abm) write_abm(f, *s.abm);
    ABM_H5_CHECK(H5Fflush(f, H5F_SCOPE_GLOBAL));
    ABM_H5_CHECK(H5Fclose(f.release()));
  }
  // HDF5's sec2 driver never fsyncs: do it ourselves, so the rename that follows can only
  // ever publish bytes that are on disk.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ABM_SYS_CHECK(fd, "open ", path);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  errno = e;
  ABM_SYS_CHECK(rc, "fsync ", path);
}

CheckpointState read_checkpoint(const std::string& path) {
  H5Quiet quiet;
  try {
    struct stat st{};
    ABM_REQUIRE(::stat(path.c_str(), &st) == 0, "cannot open: ", std::strerror(errno));
    ABM_REQUIRE(S_ISREG(st.st_mode), "not a file");
    H5Id fapl(ckpt_fapl(), H5Pclose);
    hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
    ABM_REQUIRE(fid >= 0, "not a readable HDF5 file (", h5_error_string(), ")");
    H5Id f(fid, H5Fclose);
    return read_all(Reader{f, static_cast<uint64_t>(st.st_size)});
  } catch (const std::exception& e) {
    throw Error(path + ": " + user_reason(e.what()));
  }
}

}  // namespace abm
