# nccl_test (label unit): the NCCL backend compiles and links against the CUDA toolkit's
# cudart + NCCL even with a CPU-only LibTorch, and without a GPU it reports "no CUDA
# device" as a one-line error; the launcher environment and the id-file rendezvous.
# When the library already has the backend (ABM_NCCL_ENABLED) the test links it from
# there; otherwise it compiles the nccl_*.cpp sources itself (same flags, no second
# configure, so CI pays only for those few objects).
if(ABM_NCCL_AVAILABLE)
  set(sources ${CMAKE_CURRENT_SOURCE_DIR}/nccl_test.cpp)
  if(NOT ABM_NCCL_ENABLED)
    list(APPEND sources ${ABM_NCCL_SOURCES})
  endif()
  add_executable(nccl_test ${sources})
  target_link_libraries(nccl_test PRIVATE abm_test_util abm::nccl)
  target_compile_definitions(nccl_test PRIVATE ABM_NCCL_TEST_HAS_BACKEND=1)
  target_precompile_headers(nccl_test REUSE_FROM abm_test_util)
  add_dependencies(nccl_test abmlora)
  add_test(NAME nccl_test COMMAND nccl_test)
  set_tests_properties(nccl_test PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
else()
  message(STATUS "nccl_test skipped: no CUDA toolkit with NCCL found")
endif()
