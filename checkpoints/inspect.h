// What `abmlora inspect` prints for checkpoints: one file (attributes, tensor groups with
// shapes, config, and whether it verifies), or a checkpoint directory (every file, which
// one `latest` names, and which one `--resume auto` would take).
#pragma once
#include <string>

namespace abm {

struct Inspection {
  std::string text;     // the report, ready to print
  bool verifies = false;  // file: it verifies; directory: some checkpoint does
};

// A short summary; verbose adds every module's tensors and the resolved config.
Inspection inspect_checkpoint(const std::string& path, bool verbose = false);
Inspection inspect_checkpoint_dir(const std::string& dir);

// "1.5 MiB": sizes as `abmlora inspect` prints them (models and checkpoints alike).
std::string human_bytes(double bytes);

}  // namespace abm
