# The NCCL backend (src/comm/nccl_*.cpp), included by the top-level CMakeLists.txt after
# cmake/libtorch.cmake; abm_nccl_sources(ROOM) adds its sources to the comm room. Built exactly when LibTorch's CUDA is linked (ABM_CUDA on), against
# the same libnccl LibTorch loads: the one its RUNPATH names, <torch>/../nvidia/nccl (the
# wheel's layout, also in a python site-packages), else $NCCL_HOME, else the toolkit's.
# One process must never hold two NCCLs.
#
# Sets ABM_NCCL_ENABLED and the imported target abm::nccl (NCCL + cudart).
set(ABM_NCCL_ENABLED OFF)
if(ABM_CUDA_ON)
  find_path(NCCL_INCLUDE_DIR nccl.h
            HINTS "${ABM_TORCH_ROOT}/../nvidia/nccl/include" $ENV{NCCL_HOME}/include
                  ${CUDAToolkit_INCLUDE_DIRS} NO_CACHE)
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2
               HINTS "${ABM_TORCH_ROOT}/../nvidia/nccl/lib" $ENV{NCCL_HOME}/lib
                     $ENV{NCCL_HOME}/lib64 ${CUDAToolkit_LIBRARY_DIR} NO_CACHE)
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    message(FATAL_ERROR "ABM_CUDA on but NCCL not found next to LibTorch (${ABM_TORCH_ROOT}/../nvidia/nccl), "
                        "in NCCL_HOME=$ENV{NCCL_HOME} or the CUDA toolkit: run `ABM_CUDA=ON bash launch/setup.sh`")
  endif()
  set(ABM_NCCL_ENABLED ON)
  add_library(abm_nccl_deps INTERFACE)
  target_include_directories(abm_nccl_deps SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
  get_filename_component(_nccl_dir "${NCCL_LIBRARY}" DIRECTORY)
  target_link_libraries(abm_nccl_deps INTERFACE ${NCCL_LIBRARY} CUDA::cudart "-Wl,-rpath,${_nccl_dir}")
  add_library(abm::nccl ALIAS abm_nccl_deps)
  target_link_libraries(abm_settings INTERFACE abm::nccl)
  target_compile_definitions(abm_settings INTERFACE ABM_WITH_NCCL=1)
endif()
function(abm_nccl_sources room)
  if(ABM_NCCL_ENABLED)
    file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/comm/nccl_*.cpp)
    target_sources(${room} PRIVATE ${sources})
  endif()
endfunction()
message(STATUS "NCCL backend: ${ABM_NCCL_ENABLED} (${NCCL_LIBRARY})")
