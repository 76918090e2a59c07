# nccl_test (label unit): the NCCL backend, built into the library whenever LibTorch's CUDA is
# linked (ABM_CUDA on): without a GPU it reports "no CUDA device" as a one-line error; the
# launcher environment and the id-file rendezvous. Runs its device checks on a GPU machine
# (launch/gpu_check.sh).
if(ABM_NCCL_ENABLED)
  add_executable(nccl_test ${CMAKE_CURRENT_SOURCE_DIR}/nccl_test.cpp)
  target_link_libraries(nccl_test PRIVATE abm_test_util)
  target_precompile_headers(nccl_test REUSE_FROM abm_test_util)
  add_dependencies(nccl_test abmlora)
  add_test(NAME nccl_test COMMAND nccl_test)
  set_tests_properties(nccl_test PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
else()
  message(STATUS "nccl_test skipped: built without CUDA (ABM_CUDA off)")
endif()
