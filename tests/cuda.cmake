# cuda_test (label cuda): the GPU path on a real device (forward, LoRA step against the CPU's
# hand-written step, SDPA and materialized attention, export --merge, the train step's one
# host wait, NCCL); skipped without a GPU.
# launch/gpu_check.sh runs `ctest -L cuda` on a GPU machine. Own main (MPI for NCCL's id).
add_executable(cuda_test ${CMAKE_CURRENT_SOURCE_DIR}/cuda_test.cpp)
target_link_libraries(cuda_test PRIVATE abm_test_util)
target_precompile_headers(cuda_test REUSE_FROM abm_test_util)
add_test(NAME cuda_test COMMAND cuda_test)
set_tests_properties(cuda_test PROPERTIES LABELS cuda TIMEOUT 600
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
