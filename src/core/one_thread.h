// OneThread: LibTorch's intra-op threads set to one for the guard's life (restored after).
// For results that must not depend on a rank's thread count: LAPACK's SVD and the GEMMs
// block their work by thread count, so the bits change with it.
#pragma once
#include <ATen/Parallel.h>

namespace abm {

struct OneThread {
  int before = at::get_num_threads();
  OneThread() { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(before); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

}  // namespace abm
