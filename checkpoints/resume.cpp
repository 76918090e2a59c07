#include "checkpoints/resume.h"

#include <sys/stat.h>

#include "checkpoints/checkpoint_file.h"
#include "core/check.h"

namespace abm {
namespace {

bool is_dir(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace

std::vector<CheckpointFile> resume_candidates(const std::string& dir) {
  const std::vector<CheckpointFile> files = list_checkpoints(dir);
  const int64_t top = checkpoint_step(read_latest(dir));
  bool latest_exists = false;
  for (const CheckpointFile& c : files) latest_exists |= c.step == top;
  std::vector<CheckpointFile> out;
  for (const CheckpointFile& c : files)
    if (!latest_exists || c.step <= top) out.push_back(c);
  return out;
}

ResumePoint find_resume(const std::string& dir) {
  ResumePoint out;
  const std::vector<CheckpointFile> files = resume_candidates(dir);
  if (files.empty()) return out;
  for (const CheckpointFile& c : files) {
    try {
      out.state = read_checkpoint(c.path);
      out.path = c.path;
      return out;
    } catch (const Error& e) {
      out.skipped.push_back(e.what());
    }
  }
  std::string why;
  for (auto& s : out.skipped) why += "; " + s;
  throw Error(cat(dir, ": no valid checkpoint to resume from (", out.skipped.size(),
                  " damaged", why, "); remove them to start over"));
}

ResumePoint resolve_resume(const std::string& value, const std::string& ckpt_dir) {
  if (value == "auto") return find_resume(ckpt_dir);
  if (is_dir(value)) {
    ResumePoint p = find_resume(value);
    ABM_REQUIRE(!p.path.empty(), "--resume ", value, ": no checkpoints in this directory");
    return p;
  }
  ResumePoint p;
  p.state = read_checkpoint(value);  // errors name the file
  p.path = value;
  return p;
}

void check_compatible(const CheckpointState& s, const ResumeExpect& now, const std::string& path) {
  const std::string head = path + ": cannot resume: ";
  ABM_REQUIRE(s.base_fingerprint == now.base_fingerprint, head,
              "it was made for another base model (checkpoint: ", s.base_model, " fingerprint ",
              s.base_fingerprint, "; now: ", now.base_model, " fingerprint ", now.base_fingerprint,
              ")");
  ABM_REQUIRE(s.lora.has_value() == now.lora.has_value(), head, "it trained ",
              s.lora ? "LoRA adapters" : "all weights", ", this run trains ",
              now.lora ? "LoRA adapters" : "all weights");
  if (s.lora) {
    const LoraConfig &a = *s.lora, &b = *now.lora;
    ABM_REQUIRE(a.r == b.r, head, "LoRA rank differs (checkpoint --lora-r ", a.r, ", now ", b.r, ")");
    ABM_REQUIRE(a.alpha == b.alpha, head, "LoRA alpha differs (checkpoint --lora-alpha ", a.alpha,
                ", now ", b.alpha, ")");
    ABM_REQUIRE(a.rslora == b.rslora, head, "rsLoRA differs (checkpoint ", a.rslora ? "on" : "off",
                ", now ", b.rslora ? "on" : "off", ")");
    ABM_REQUIRE(a.target_modules() == b.target_modules(), head,
                "LoRA targets differ (checkpoint ", join(a.target_modules()), ", now ",
                join(b.target_modules()), ")");
    ABM_REQUIRE(a.dropout == b.dropout, head, "LoRA dropout differs (checkpoint ", a.dropout,
                ", now ", b.dropout, ")");
  }
  ABM_REQUIRE(s.data_fingerprint.empty() || now.data_fingerprint.empty() ||
                  s.data_fingerprint == now.data_fingerprint,
              head, "the training data differs (checkpoint rows:hash ", s.data_fingerprint,
              ", now ", now.data_fingerprint, "); its data position would point at other "
              "examples. Resume with the same --data, --template, --max-length and --pack");
  ABM_REQUIRE(now.global_batch == 0 || s.global_batch == now.global_batch, head,
              "global batch differs (checkpoint --global-batch ", s.global_batch, ", now ",
              now.global_batch, "); the data position is counted in global batches");
  ABM_REQUIRE(!now.sampler_seed || s.sampler_seed == *now.sampler_seed, head,
              "data seed differs (checkpoint --seed ", s.sampler_seed, ", now ",
              now.sampler_seed.value_or(0), ")");
}

}  // namespace abm
