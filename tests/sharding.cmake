# sharding_test: the partition planner, the stage map, stage loading (label unit, 1 rank)
# and the stage transport under mpirun -np 2 and -np 3 (label mpi). Own main() with MPI.
add_executable(sharding_test ${CMAKE_CURRENT_SOURCE_DIR}/sharding_test.cpp)
target_link_libraries(sharding_test PRIVATE abm_test_util)
target_precompile_headers(sharding_test REUSE_FROM abm_test_util)
add_dependencies(sharding_test abmlora)
add_test(NAME sharding_test COMMAND sharding_test)
set_tests_properties(sharding_test PROPERTIES LABELS unit TIMEOUT 120)
foreach(np 2 3)
  add_test(NAME sharding_test_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} ${np}
                   $<TARGET_FILE:sharding_test> --gtest_filter=Transport*:Pipeline*)
  set_tests_properties(sharding_test_np${np} PROPERTIES
    LABELS mpi TIMEOUT 120 PROCESSORS ${np}
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endforeach()
