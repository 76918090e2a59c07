// libFuzzer driver: the HDF5 checkpoint reader (checkpoints/checkpoint_file.h,
// read_checkpoint) on a hostile .h5 file: HDF5's own parsing (uninstrumented library:
// segfaults and out-of-bounds memcpy are still caught), then our structure, attribute and
// dataset checksums, dtype and shape checks (allocation bounded by the file size), the
// LoRA config JSON inside. Bad input must end in abm::Error.
#include <torch/torch.h>

#include <cstdlib>

#include "checkpoints/checkpoint_file.h"
#include "fuzz_hdf5.h"
#include "fuzz_input.h"

namespace {
abm::fuzz::ScratchCleanup cleanup("in.h5");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = abm::fuzz::write_input("in.h5", data, size);
  try {
    abm::CheckpointState s = abm::read_checkpoint(path);
    if (s.trainable.empty() || s.optimizer.exp_avg.size() != s.trainable.size()) std::abort();
    if (abm::state_bytes(s) < 0 || uint64_t(abm::state_bytes(s)) > 3 * uint64_t(size)) std::abort();
  } catch (const std::exception&) {
  }
  abm::fuzz::require_no_open_hdf5_objects();
  return 0;
}
