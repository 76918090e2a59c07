# abm_test: the ABM loss/gradient vs a torch reference, information loss vs explicit
# projectors, ABM behaviour, and 1 rank == 2 ranks under real mpirun (label mpi).
abm_test(abm_test mpi ${CMAKE_CURRENT_SOURCE_DIR}/abm_test.cpp)
set_tests_properties(abm_test PROPERTIES
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" RUN_SERIAL TRUE)
