# train_cli_test: `abmlora train/pretrain/eval` end to end under real mpirun -np 2 on tiny
# init-model models (label mpi).
abm_test(train_cli_test mpi ${CMAKE_CURRENT_SOURCE_DIR}/train_cli_test.cpp)
set_tests_properties(train_cli_test PROPERTIES
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" RUN_SERIAL TRUE)
