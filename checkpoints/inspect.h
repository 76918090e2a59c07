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

Inspection inspect_checkpoint(const std::string& path);
Inspection inspect_checkpoint_dir(const std::string& dir);

}  // namespace abm
