# step_engine_test (label mpi): the trainer, one-stage ABM and pipelined ABM reproduce the
# adapters and loss curves frozen in tests/fixtures/step_engine/ (bitwise on the CPU they
# were made on), on 2 real MPI ranks.
abm_test(step_engine_test mpi ${CMAKE_CURRENT_SOURCE_DIR}/step_engine_test.cpp)
set_tests_properties(step_engine_test PROPERTIES
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" PROCESSORS 2)
