// Choosing the checkpoint to resume from, and refusing one that belongs to another run.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "checkpoints/checkpoint_dir.h"
#include "checkpoints/checkpoint_state.h"

namespace abm {

struct ResumePoint {
  std::string path;                  // "" when there is nothing to resume from
  CheckpointState state;             // fully read and verified
  std::vector<std::string> skipped;  // "PATH: reason" of each newer file that failed (the
                                     // caller reports them)
};

// The files find_resume tries, in order (see below).
std::vector<CheckpointFile> resume_candidates(const std::string& dir);

// Walks dir's checkpoints from the one `latest` names downwards (all of them, newest
// first, when `latest` is missing or names no file) and returns the first that reads and
// verifies. Files above `latest` are ignored: they belong to an abandoned continuation,
// or were published by a writer killed before it updated `latest`. Throws abm::Error
// when checkpoints exist but none verifies (listing why), since silently starting over
// would lose the run.
ResumePoint find_resume(const std::string& dir);

// --resume VALUE: "auto" = find_resume(ckpt_dir) (an empty result means start fresh);
// a directory = find_resume(VALUE), which must find one; a file = read_checkpoint(VALUE).
ResumePoint resolve_resume(const std::string& value, const std::string& ckpt_dir);

// What the resuming run is, to compare with the checkpoint.
struct ResumeExpect {
  std::string base_model;        // for the message only
  std::string base_fingerprint;  // model_fingerprint() of --model
  std::string data_fingerprint;  // Dataset::fingerprint() of the training rows ("" = not checked)
  std::optional<LoraConfig> lora;  // nullopt = full-parameter training
  int64_t global_batch = 0;      // 0 = not checked
  std::optional<uint64_t> sampler_seed;
};

// Throws abm::Error "PATH: cannot resume: <what differs> (checkpoint X, now Y)" when the
// checkpoint was made for another base model, LoRA config, training data (file contents,
// template, max length, packing: anything that changes the rows), global batch or data seed.
// Rank, alpha, rsLoRA, targets and dropout must match; init and the LoRA seed are spent
// once the adapter exists. World size may differ (elastic resume).
void check_compatible(const CheckpointState& s, const ResumeExpect& now, const std::string& path);

}  // namespace abm
