# Robustness (issue: hostile input and shared run directories):
#   run_lock_test    the run directory's lock: second holder, killed holder, stale file, and
#                    two real train jobs on one --out (label unit)
#   launcher_test    launch/run returns 3 after SIGTERM / SIGINT stops a 2-rank mpirun job
#                    with a checkpoint, and --resume auto finishes it (label mpi)
abm_test(run_lock_test unit ${CMAKE_CURRENT_SOURCE_DIR}/run_lock_test.cpp)
set_tests_properties(run_lock_test PROPERTIES ENVIRONMENT "ABM_MATMUL_GFLOPS=fp32=1,bf16=1")
add_test(NAME launcher_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/launcher_test.sh $<TARGET_FILE:abmlora>)
set_tests_properties(launcher_test PROPERTIES LABELS mpi TIMEOUT 300
  ENVIRONMENT "ABM_MATMUL_GFLOPS=fp32=1,bf16=1")
