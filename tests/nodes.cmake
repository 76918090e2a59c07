# Multi-node tests (label cluster): several namespaced nodes on this machine, TCP between
# them (slurm/local/nodes.sh), a two-node Slurm; root only, skipped (exit 77) otherwise.
#   cluster_mpi     2 nodes x 1 rank = 2 ranks on one node (training, also over a throttled
#                   link; ABM over 2 stages), all-reduce busbw TCP vs shared memory
#   cluster_faults  a node killed, a link down: exit 2 within ABM_COMM_TIMEOUT_S + grace with
#                   one line; resume on the node left
#   cluster_slurm   requeue.sbatch across 2 Slurm nodes (byte-identical adapter), scaling sweep
foreach(mode mpi faults slurm)
  add_test(NAME cluster_${mode}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cluster_test.sh ${mode} $<TARGET_FILE:abmlora>)
  set_tests_properties(cluster_${mode} PROPERTIES
    LABELS cluster TIMEOUT 600 RUN_SERIAL TRUE SKIP_RETURN_CODE 77
    ENVIRONMENT "ABM_MATMUL_GFLOPS=fp32=1,bf16=1")  # --dtype auto: fp32 (test_main.cpp)
endforeach()
