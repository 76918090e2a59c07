# LibTorch, as the imported target abm::torch.
#
# ABM_TORCH_ROOT: a LibTorch tree with include/ and lib/ (default: deps/torch, the pinned
# wheel launch/fetch_libtorch.sh unpacks; on a GPU machine the python torch package
# directory, which has the same layout). The targets are made here instead of through
# TorchConfig.cmake because a CUDA-built wheel's config insists on the CUDA toolkit even
# for a CPU-only build, and this way one file decides what is linked.
#
# ABM_CUDA=AUTO|ON|OFF (AUTO: ON when /usr/local/cuda exists) links libtorch_cuda too, so
# CUDA kernels register and the CUDA code paths compile (ABM_TORCH_CUDA=1). The binary
# still starts on a machine without a GPU or driver: LibTorch loads the driver lazily.
#
# The RPATH (not RUNPATH: LD_LIBRARY_PATH cannot override it) names ABM_TORCH_ROOT/lib, so
# the binary can never pick up a system libtorch.
set(ABM_TORCH_ROOT "${PROJECT_SOURCE_DIR}/deps/torch" CACHE PATH "LibTorch tree (include/, lib/)")
set(ABM_CUDA AUTO CACHE STRING "Link libtorch_cuda: AUTO (when /usr/local/cuda exists), ON or OFF")
set_property(CACHE ABM_CUDA PROPERTY STRINGS AUTO ON OFF)

if(NOT EXISTS "${ABM_TORCH_ROOT}/lib/libtorch_cpu.so")
  message(FATAL_ERROR "LibTorch not found in ABM_TORCH_ROOT=${ABM_TORCH_ROOT}: run `bash launch/setup.sh` "
                      "(it fetches the pinned wheel into deps/), or pass -DABM_TORCH_ROOT=<dir with include/ and lib/>")
endif()

if(ABM_CUDA STREQUAL "AUTO")
  if(EXISTS /usr/local/cuda)
    set(ABM_CUDA_ON ON)
  else()
    set(ABM_CUDA_ON OFF)
  endif()
elseif(ABM_CUDA)
  set(ABM_CUDA_ON ON)
else()
  set(ABM_CUDA_ON OFF)
endif()

set(_tl "${ABM_TORCH_ROOT}/lib")
add_library(abm_torch INTERFACE)
target_include_directories(abm_torch SYSTEM INTERFACE
  "${ABM_TORCH_ROOT}/include" "${ABM_TORCH_ROOT}/include/torch/csrc/api/include")
# --no-as-needed: nothing references libtorch_cuda's symbols directly, but loading it is
# what registers the CUDA kernels and allocator.
set(_torch_libs "${_tl}/libtorch.so" "${_tl}/libtorch_cpu.so" "${_tl}/libc10.so")
if(ABM_CUDA_ON)
  if(NOT EXISTS "${_tl}/libtorch_cuda.so")
    message(FATAL_ERROR "ABM_CUDA=${ABM_CUDA}: ${_tl}/libtorch_cuda.so missing (a CPU-only LibTorch?)")
  endif()
  if(NOT CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit REQUIRED)
  list(APPEND _torch_libs "${_tl}/libtorch_cuda.so" "${_tl}/libc10_cuda.so")
  target_link_libraries(abm_torch INTERFACE CUDA::cudart)
  target_compile_definitions(abm_torch INTERFACE ABM_TORCH_CUDA=1)
endif()
target_link_libraries(abm_torch INTERFACE "-Wl,--no-as-needed" ${_torch_libs} "-Wl,--as-needed"
                      "-Wl,--disable-new-dtags" "-Wl,-rpath,${_tl}")
add_library(abm::torch ALIAS abm_torch)

# The version, read from the headers (torch/headeronly/version.h in 2.9+, else torch/version.h).
foreach(_vh torch/headeronly/version.h torch/csrc/api/include/torch/version.h)
  if(EXISTS "${ABM_TORCH_ROOT}/include/${_vh}" AND NOT ABM_TORCH_VERSION)
    file(STRINGS "${ABM_TORCH_ROOT}/include/${_vh}" _v REGEX "define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" ABM_TORCH_VERSION "${_v}")
  endif()
endforeach()
message(STATUS "LibTorch ${ABM_TORCH_VERSION} from ${ABM_TORCH_ROOT} (CUDA: ${ABM_CUDA_ON}, ABM_CUDA=${ABM_CUDA})")
