// For the HDF5 drivers: after each input no HDF5 object may be left open. An id the
// reader forgets to close on some error path is a leak that LeakSanitizer cannot report
// (HDF5's own allocations are suppressed, see tests/sanitize/lsan.supp), so it is
// checked here and reported as a crash.
#pragma once
#include <hdf5.h>

#include <cstdio>
#include <cstdlib>

namespace abm::fuzz {

inline void require_no_open_hdf5_objects() {
  ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (open != 0) {
    std::fprintf(stderr, "fuzz: %zd HDF5 object(s) left open after this input\n", open);
    std::abort();
  }
}

}  // namespace abm::fuzz
