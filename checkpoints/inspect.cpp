#include "checkpoints/inspect.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <type_traits>

#include "checkpoints/checkpoint_dir.h"
#include "checkpoints/checkpoint_file.h"
#include "checkpoints/h5_io.h"
#include "checkpoints/resume.h"
#include "checkpoints/state_fields.h"

namespace abm {
namespace {

int64_t file_size(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 ? int64_t(st.st_size) : -1;
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

template <typename T>
std::string list(const std::vector<T>& v, size_t max = 8) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size() && i < max; ++i) os << (i ? ", " : "") << v[i];
  if (v.size() > max) os << ", ... (" << v.size() << ")";
  os << "]";
  return os.str();
}

void describe(std::ostringstream& os, const CheckpointState& s, bool verbose) {
  os << "  format " << kCheckpointFormat << " v" << s.format_version << ", written " << s.created
     << " by abmlora " << s.tool_version << "\n";
  os << "  step " << s.step << ", epoch " << s.epoch << ", samples seen " << s.samples_seen
     << ", tokens seen " << s.tokens_seen << ", global batch " << s.global_batch
     << ", world size " << s.world_size << "\n";
  os << "  base model " << s.base_model << " (fingerprint " << s.base_fingerprint << ")\n";
  os << "  training data rows:hash " << (s.data_fingerprint.empty() ? "(not recorded)" : s.data_fingerprint) << "\n";
  os << "  trainable: " << (s.lora ? "LoRA " + s.lora->to_json().dump() : "all weights") << "\n";
  const OptimizerState& o = s.optimizer;
  os << "  optimizer: AdamW step " << o.step << ", betas " << o.beta1 << "/" << o.beta2 << ", eps "
     << o.eps << ", weight decay " << o.weight_decay << ", moments for " << o.exp_avg.size()
     << " tensors\n";
  const LrSchedule& l = s.scheduler;
  os << "  scheduler: " << l.kind << ", peak " << l.peak << ", warmup " << l.warmup << ", total "
     << l.total << ", min ratio " << l.min_ratio << " (next lr " << l.at(s.step) << ")\n";
  os << "  rng: sampler seed " << s.sampler_seed;
  for (auto& [name, t] : s.rng) os << ", " << name << " " << shape_str(t) << " " << t.scalar_type();
  os << "\n";
  if (s.abm) {
    const AbmProvenance& a = *s.abm;
    os << "  abm: seed " << a.seed << ", margin " << a.margin << ", scope " << a.scope
       << ", teacher " << (a.teacher.empty() ? "base model" : a.teacher) << ", " << a.steps
       << " steps (lr " << a.lr << ", " << a.seconds << " s), " << a.samples.size()
       << " samples, layers " << list(a.layers) << "\n";
    if (a.teacher_steps > 0)
      os << "       teacher trained on the task: " << a.teacher_steps << " steps, final loss "
         << a.teacher_loss << ", " << a.teacher_seconds << " s\n";
    if (!a.loss.empty())
      os << "       loss " << a.loss.front() << " -> " << a.loss.back() << ", accuracy "
         << list(a.accuracy) << "\n";
  } else {
    os << "  abm: none\n";
  }
  int64_t params = 0;
  for (auto& [name, t] : s.trainable) params += t.numel();
  os << "  " << (s.lora ? "adapter" : "params") << ": " << s.trainable.size() << " tensors, "
     << params << " parameters, " << human_bytes(state_bytes(s)) << " of tensors with moments\n";
  // One line per module ("<module>  lora_A [..]  lora_B [..]"); a 7B adapter has 224, so
  // the summary shows the first few.
  constexpr int kSummaryModules = 4;
  std::string module;
  int modules = 0;
  for (auto& [name, t] : s.trainable) {
    std::string m = name.substr(0, name.rfind('.')), leaf = name.substr(name.rfind('.') + 1);
    if (m != module) {
      module = m;
      if (++modules <= kSummaryModules || verbose) os << (modules > 1 ? "\n" : "") << "    " << m;
    }
    if (modules <= kSummaryModules || verbose) os << "  " << leaf << " " << shape_str(t);
  }
  if (modules > kSummaryModules && !verbose)
    os << "\n    ... " << modules - kSummaryModules << " more modules (--verbose lists all)";
  std::istringstream cfg(s.config);
  if (!verbose) {
    int64_t lines = std::count(s.config.begin(), s.config.end(), '\n');
    os << "\n  config: " << lines << " options (--verbose prints them)\n";
    return;
  }
  os << "\n  config:\n";
  for (std::string line; std::getline(cfg, line);) os << "    " << line << "\n";
}

// When the full read fails: whatever root attributes HDF5 can still read.
void describe_raw(std::ostringstream& os, const std::string& path) {
  H5Quiet quiet;
  H5Id fapl(ckpt_fapl(), H5Pclose);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (f < 0) return;
  H5Id file(f, H5Fclose);
  auto show = [&](const char* name, auto& v, bool) {
    try {
      if (!has_attr(file, name)) return;
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
        const std::string text = get_str(file, name);
        os << "  " << name << ": "
           << (text.find('\n') == std::string::npos ? text : std::to_string(text.size()) + " bytes")
           << "\n";
      } else {
        os << "  " << name << ": " << get_i64(file, name) << "\n";
      }
    } catch (const std::exception&) {
      os << "  " << name << ": (unreadable)\n";
    }
  };
  std::string format, lora_config;
  show("format", format, true);
  CheckpointState names;  // only the field list is used
  visit_root_fields(names, show);
  show("lora_config", lora_config, true);
}

}  // namespace

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

Inspection inspect_checkpoint(const std::string& path, bool verbose) {
  std::ostringstream os;
  Inspection out;
  os << "checkpoint: " << path << " (" << human_bytes(double(file_size(path))) << ")\n";
  try {
    CheckpointState s = read_checkpoint(path);
    describe(os, s, verbose);
    out.verifies = true;
    os << "verifies: yes (format, structure and every checksum)\n";
  } catch (const Error& e) {
    describe_raw(os, path);
    os << "verifies: no (" << e.what() << ")\n";
  }
  out.text = os.str();
  return out;
}

Inspection inspect_checkpoint_dir(const std::string& dir) {
  std::ostringstream os;
  Inspection out;
  const std::vector<CheckpointFile> files = list_checkpoints(dir);
  const std::string latest = read_latest(dir);
  os << "checkpoints: " << dir << " (" << files.size() << " files, latest "
     << (latest.empty() ? "none" : latest) << ")\n";
  std::map<std::string, bool> good;
  for (const CheckpointFile& c : files) {
    std::string verdict = "yes";
    try {
      read_checkpoint(c.path);
      good[c.path] = true;
    } catch (const Error& e) {
      verdict = std::string("no (") + e.what() + ")";
    }
    os << "  " << c.path.substr(c.path.rfind('/') + 1) << "  step " << c.step << "  "
       << human_bytes(double(file_size(c.path))) << "  verifies: " << verdict << "\n";
  }
  std::string pick;
  for (const CheckpointFile& c : resume_candidates(dir))
    if (pick.empty() && good.count(c.path)) pick = c.path;
  out.verifies = !pick.empty();
  os << "--resume auto would take: "
     << (!pick.empty() ? pick : files.empty() ? "nothing (start fresh)" : "nothing (error: none verifies)")
     << "\n";
  out.text = os.str();
  return out;
}

}  // namespace abm
