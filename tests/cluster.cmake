# cluster_cli_test: `abmlora train` as a cluster job under real mpirun (label mpi):
# same-world-size resume is bitwise, elastic resume 2 -> 1 -> 3 ranks keeps the global data
# order, a writer killed mid-publish, damaged and foreign checkpoints, report --scaling.
abm_test(cluster_cli_test mpi ${CMAKE_CURRENT_SOURCE_DIR}/cluster_cli_test.cpp)
set_tests_properties(cluster_cli_test PROPERTIES
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" RUN_SERIAL TRUE)
