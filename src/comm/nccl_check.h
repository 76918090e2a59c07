// ABM_CUDA_CHECK / ABM_NCCL_CHECK: every CUDA runtime and NCCL call goes through here, so
// a failure names the call, file:line, rank@host and the library's own error string.
#pragma once
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "core/check.h"

#define ABM_CUDA_CHECK(call)                                                            \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess)                                                              \
      ::abm::throw_check(__FILE__, __LINE__,                                            \
                         ::abm::cat(#call " failed: ", cudaGetErrorString(e_)));        \
  } while (0)

#define ABM_NCCL_CHECK(call)                                                            \
  do {                                                                                  \
    ncclResult_t r_ = (call);                                                           \
    if (r_ != ncclSuccess)                                                              \
      ::abm::throw_check(__FILE__, __LINE__,                                            \
                         ::abm::cat(#call " failed: ", ncclGetErrorString(r_), " (",    \
                                    ncclGetLastError(nullptr), ")"));                    \
  } while (0)
