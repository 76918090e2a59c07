# train_test: AdamW/clip/schedule vs torch, and `abmlora train` under mpirun (label mpi).
abm_test(train_test mpi ${CMAKE_CURRENT_SOURCE_DIR}/train_test.cpp)
set_tests_properties(train_test PROPERTIES
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" RUN_SERIAL TRUE)
