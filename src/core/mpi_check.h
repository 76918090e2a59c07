// ABM_MPI_CHECK: every MPI call's result goes through here, so a failure names the call,
// file:line, rank@host and MPI's own error string.
#pragma once
#include <mpi.h>

#include "core/check.h"

namespace abm {
inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, len);
}
}  // namespace abm

#define ABM_MPI_CHECK(call)                                                        \
  do {                                                                             \
    int rc_ = (call);                                                              \
    if (rc_ != MPI_SUCCESS)                                                        \
      ::abm::throw_check(__FILE__, __LINE__,                                       \
                         ::abm::cat(#call " failed: ", ::abm::mpi_error_string(rc_))); \
  } while (0)
