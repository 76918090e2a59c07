#include "checkpoints/checkpoint_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <regex>

#include "checkpoints/h5_io.h"
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

// Writes tensors under root/<module>/<leaf>, one group per module, in order.
void put_named(hid_t root, const NamedTensors& tensors) {
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
  }
}

void write_root_attrs(hid_t f, const CheckpointState& s) {
  put_attr(f, "format", std::string(kCheckpointFormat));
  put_attr(f, "format_version", kCheckpointVersion);
  put_attr(f, "step", s.step);
  put_attr(f, "epoch", s.epoch);
  put_attr(f, "samples_seen", s.samples_seen);
  put_attr(f, "tokens_seen", s.tokens_seen);
  put_attr(f, "global_batch", s.global_batch);
  put_attr(f, "world_size", s.world_size);
  put_attr(f, "created", utc_now());
  put_attr(f, "tool_version", std::string(ABM_VERSION));
  put_attr(f, "config", s.config);
  put_attr(f, "base_model", s.base_model);
  put_attr(f, "base_fingerprint", s.base_fingerprint);
  put_attr(f, "data_fingerprint", s.data_fingerprint);
  put_attr(f, "trainable", std::string(s.lora ? "lora" : "full"));
  put_attr(f, "lora_config", s.lora ? s.lora->to_json().dump() : std::string());
  seal_attrs(f);
}

void write_optimizer(hid_t f, const CheckpointState& s) {
  const OptimizerState& o = s.optimizer;
  ABM_CHECK(o.exp_avg.size() == s.trainable.size() && o.exp_avg_sq.size() == s.trainable.size(),
            "optimizer has ", o.exp_avg.size(), "/", o.exp_avg_sq.size(), " moments for ",
            s.trainable.size(), " tensors");
  H5Id g(create_group(f, "optimizer"), H5Gclose);
  put_attr(g, "step", o.step);
  put_attr(g, "beta1", o.beta1);
  put_attr(g, "beta2", o.beta2);
  put_attr(g, "eps", o.eps);
  put_attr(g, "weight_decay", o.weight_decay);
  seal_attrs(g);
  std::map<std::string, std::unique_ptr<H5Id>> groups;
  for (size_t i = 0; i < s.trainable.size(); ++i) {
    auto [module, leaf] = split_name(s.trainable[i].first);
    auto& mg = groups[module];
    if (!mg) mg = std::make_unique<H5Id>(create_group(g, module), H5Gclose);
    put_tensor(*mg, leaf + ".exp_avg", o.exp_avg[i]);
    put_tensor(*mg, leaf + ".exp_avg_sq", o.exp_avg_sq[i]);
  }
}

void write_abm(hid_t f, const AbmProvenance& a) {
  H5Id g(create_group(f, "abm"), H5Gclose);
  put_attr(g, "seed", a.seed);
  put_attr(g, "margin", a.margin);
  put_attr(g, "lr", a.lr);
  put_attr(g, "seconds", a.seconds);
  put_attr(g, "steps", a.steps);
  put_attr(g, "scope", a.scope);
  put_attr(g, "teacher", a.teacher);
  seal_attrs(g);
  auto i64 = [](const std::vector<int64_t>& v) {
    return at::tensor(at::ArrayRef<int64_t>(v), at::kLong).reshape({int64_t(v.size())});
  };
  auto f64 = [](const std::vector<double>& v) {
    return at::tensor(at::ArrayRef<double>(v), at::kDouble).reshape({int64_t(v.size())});
  };
  put_tensor(g, "samples", i64(a.samples));
  put_tensor(g, "layers", i64(a.layers));
  put_tensor(g, "loss", f64(a.loss));
  put_tensor(g, "accuracy", f64(a.accuracy));
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
  o.step = get_i64(g, "step");
  o.beta1 = get_f64(g, "beta1");
  o.beta2 = get_f64(g, "beta2");
  o.eps = get_f64(g, "eps");
  o.weight_decay = get_f64(g, "weight_decay");
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
  s.kind = get_str(g, "kind");
  s.peak = get_f64(g, "peak");
  s.warmup = get_i64(g, "warmup");
  s.total = get_i64(g, "total");
  s.min_ratio = get_f64(g, "min_ratio");
  return s;
}

AbmProvenance read_abm(const Reader& r) {
  H5Id g = r.group(r.file, "abm", "/abm");
  verify_attrs(g, "/abm");
  AbmProvenance a;
  a.seed = get_u64(g, "seed");
  a.margin = get_f64(g, "margin");
  a.lr = get_f64(g, "lr");
  a.seconds = get_f64(g, "seconds");
  a.steps = get_i64(g, "steps");
  a.scope = get_str(g, "scope");
  a.teacher = get_str(g, "teacher");
  auto i64 = [&](const char* n) {
    at::Tensor t = r.tensor(g, n, "/abm");
    ABM_REQUIRE(t.scalar_type() == at::kLong && t.dim() == 1, "/abm/", n, ": not 1-D I64");
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  };
  auto f64 = [&](const char* n) {
    at::Tensor t = r.tensor(g, n, "/abm");
    ABM_REQUIRE(t.scalar_type() == at::kDouble && t.dim() == 1, "/abm/", n, ": not 1-D F64");
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  };
  a.samples = i64("samples");
  a.layers = i64("layers");
  a.loss = f64("loss");
  a.accuracy = f64("accuracy");
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
  s.step = get_i64(f, "step");
  s.epoch = get_i64(f, "epoch");
  s.samples_seen = get_i64(f, "samples_seen");
  s.tokens_seen = get_i64(f, "tokens_seen");
  s.global_batch = get_i64(f, "global_batch");
  s.world_size = get_i64(f, "world_size");
  s.created = get_str(f, "created");
  s.tool_version = get_str(f, "tool_version");
  s.config = get_str(f, "config");
  s.base_model = get_str(f, "base_model");
  s.base_fingerprint = get_str(f, "base_fingerprint");
  if (has_attr(f, "data_fingerprint")) s.data_fingerprint = get_str(f, "data_fingerprint");
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
  s.sampler_seed = get_u64(rng, "sampler_seed");
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
    H5Id tg(create_group(f, s.lora ? "adapter" : "params"), H5Gclose);
    put_named(tg, s.trainable);
    write_optimizer(f, s);
    H5Id sg(create_group(f, "scheduler"), H5Gclose);
    put_attr(sg, "kind", s.scheduler.kind);
    put_attr(sg, "peak", s.scheduler.peak);
    put_attr(sg, "warmup", s.scheduler.warmup);
    put_attr(sg, "total", s.scheduler.total);
    put_attr(sg, "min_ratio", s.scheduler.min_ratio);
    seal_attrs(sg);
    H5Id rg(create_group(f, "rng"), H5Gclose);
    put_attr(rg, "sampler_seed", s.sampler_seed);
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
