# The NCCL backend (src/comm/nccl_*.cpp), included by the top-level CMakeLists.txt.
#
# ABM_WITH_NCCL: AUTO (default) builds it when LibTorch has CUDA and NCCL is found; ON
# builds it whenever the CUDA toolkit and NCCL are found — also with a CPU-only LibTorch,
# where only its raw-device-pointer calls are usable (that is how CI checks that it
# compiles and links); OFF never. NCCL is searched in $NCCL_HOME, then the CUDA toolkit.
#
# Sets ABM_NCCL_AVAILABLE (toolkit + NCCL found), ABM_NCCL_ENABLED (built into the
# library) and the imported target abm::nccl (NCCL + cudart).
set(ABM_WITH_NCCL AUTO CACHE STRING "NCCL backend: AUTO, ON or OFF")
set_property(CACHE ABM_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)

set(ABM_NCCL_AVAILABLE OFF)
set(ABM_NCCL_ENABLED OFF)
set(ABM_TORCH_HAS_CUDA OFF)
if(TARGET torch_cuda OR TARGET c10_cuda)
  set(ABM_TORCH_HAS_CUDA ON)
endif()

if(NOT ABM_WITH_NCCL STREQUAL "OFF")
  if(NOT CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit QUIET)
  find_path(NCCL_INCLUDE_DIR nccl.h
            HINTS $ENV{NCCL_HOME}/include ${CUDAToolkit_INCLUDE_DIRS})
  find_library(NCCL_LIBRARY nccl
               HINTS $ENV{NCCL_HOME}/lib $ENV{NCCL_HOME}/lib64 ${CUDAToolkit_LIBRARY_DIR})
  if(CUDAToolkit_FOUND AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(ABM_NCCL_AVAILABLE ON)
    add_library(abm_nccl_deps INTERFACE)
    target_include_directories(abm_nccl_deps INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(abm_nccl_deps INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
    if(ABM_TORCH_HAS_CUDA)
      target_compile_definitions(abm_nccl_deps INTERFACE ABM_TORCH_CUDA=1)
    endif()
    add_library(abm::nccl ALIAS abm_nccl_deps)
  endif()
  if(ABM_WITH_NCCL STREQUAL "ON" OR ABM_WITH_NCCL STREQUAL "TRUE" OR ABM_WITH_NCCL STREQUAL "1")
    if(NOT ABM_NCCL_AVAILABLE)
      message(FATAL_ERROR "ABM_WITH_NCCL=ON but the CUDA toolkit or NCCL was not found "
                          "(CUDAToolkit_ROOT=${CUDAToolkit_ROOT}, NCCL_HOME=$ENV{NCCL_HOME})")
    endif()
    set(ABM_NCCL_ENABLED ON)
  elseif(ABM_NCCL_AVAILABLE AND ABM_TORCH_HAS_CUDA)
    set(ABM_NCCL_ENABLED ON)
  endif()
endif()

file(GLOB ABM_NCCL_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/comm/nccl_*.cpp)
if(ABM_NCCL_ENABLED)
  target_sources(abmlora_lib PRIVATE ${ABM_NCCL_SOURCES})
  target_link_libraries(abmlora_lib PUBLIC abm::nccl)
  target_compile_definitions(abmlora_lib PUBLIC ABM_WITH_NCCL=1)
endif()
message(STATUS "NCCL backend: ${ABM_NCCL_ENABLED} (ABM_WITH_NCCL=${ABM_WITH_NCCL}, "
               "toolkit+NCCL found: ${ABM_NCCL_AVAILABLE}, LibTorch CUDA: ${ABM_TORCH_HAS_CUDA})")
