// --resume for train and for its task teacher (task_teacher.h): rank 0 picks and verifies
// the checkpoint, every rank receives it.
#pragma once
#include <string>

#include "checkpoints/checkpoint_state.h"
#include "comm/communicator.h"
#include "data/dataset.h"
#include "lora/adapter_set.h"
#include "train/train_config.h"

namespace abm {

// Looks in cfg.checkpoint_dir() (or at cfg.resume's path): damaged files are reported and
// skipped, another run's checkpoint is refused with exit 2 (base model, data, LoRA layout,
// global batch or seed differ). Returns false for a fresh start (cfg.resume empty or no
// checkpoint); else `out` holds the state on every rank and `path` the file.
bool find_checkpoint(const TrainConfig& cfg, const AdapterSet* adapters, const Dataset& data,
                     Communicator& comm, CheckpointState& out, std::string& path);

}  // namespace abm
