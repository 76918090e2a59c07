// A run's checkpoint directory (RUN/checkpoints): naming, the atomic publish protocol,
// `latest`, and rotation. One rank writes; the others must not touch the directory.
//
// Publish protocol (a crash or kill -9 at any point leaves the previous checkpoint and
// `latest` intact, and never leaves a partial file under a checkpoint name):
//   ckpt-<step:08d>.h5.tmp  written, H5Fflush, fsync
//   rename -> ckpt-<step:08d>.h5, fsync the directory
//   latest.tmp := "ckpt-<step:08d>.h5\n", fsync, rename -> latest, fsync the directory
//   delete all but the newest `keep` checkpoints at or below this step
// `latest` is a small text file rather than a symlink: it survives copying and file systems
// without symlinks, and is as atomic (rename).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checkpoints/checkpoint_state.h"

namespace abm {

std::string checkpoint_name(int64_t step);  // "ckpt-00000042.h5"
// The step of a checkpoint file name ("ckpt-00000042.h5" -> 42), or -1 for anything else
// (a *.tmp, latest, other files).
int64_t checkpoint_step(const std::string& file_name);

struct CheckpointFile {
  int64_t step = 0;
  std::string path;
};
// Checkpoint files in dir, newest (highest step) first; none when dir does not exist.
std::vector<CheckpointFile> list_checkpoints(const std::string& dir);
// The file name `latest` points to, or "" when there is no (readable) latest file.
std::string read_latest(const std::string& dir);

// Publishes s as dir/ckpt-<s.step>.h5 by the protocol above and returns its path; keep <= 0
// keeps every checkpoint. A failed write removes its *.tmp and throws abm::Error naming
// the directory and the reason; the previous checkpoint stays the latest. before_publish
// (if set) runs after the *.tmp is durable and before the rename: tests stall there to
// kill a writer mid-publish.
std::string write_checkpoint(const std::string& dir, const CheckpointState& s, int64_t keep = 0,
                             const std::function<void()>& before_publish = {});

}  // namespace abm
