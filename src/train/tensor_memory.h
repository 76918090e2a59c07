// Live bytes of LibTorch CPU tensors and their peak, counted by wrapping c10's CPU
// allocator. Peak RSS cannot be reset and includes freed-but-kept heap; this measures what
// a train step itself holds (activations, temporaries), e.g. with vs without
// --recompute, in one process.
#pragma once
#include <cstdint>

namespace abm {

class TensorMemory {
 public:
  // Replaces the CPU allocator with a counting one (idempotent). Tensors allocated before are not counted
  // (their frees are not either).
  static void install();
  static bool installed();
  static int64_t current();  // bytes of counted tensors alive now
  static int64_t peak();     // max of current() since the last reset_peak()
  static void reset_peak();  // peak := current
};

}  // namespace abm
