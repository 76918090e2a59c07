# comm_test: the MPI communicator, run under mpirun with 2 and 3 ranks (label mpi).
# Own main() (MPI init/finalize around RUN_ALL_TESTS), so no GTest::gtest_main.
add_executable(comm_test ${CMAKE_CURRENT_SOURCE_DIR}/comm_test.cpp)
target_link_libraries(comm_test PRIVATE abm_test_util)
target_precompile_headers(comm_test REUSE_FROM abm_test_util)

# The >2^31-element all_reduce (ABM_COMM_LARGE=1) runs only with 2 ranks: ~2.2 GB per
# rank plus MPI buffers. RUN_SERIAL keeps the two entries from stacking memory and cores.
foreach(np 2 3)
  add_test(NAME comm_test_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} ${np}
                   $<TARGET_FILE:comm_test>)
  set(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
  if(np EQUAL 2)
    list(APPEND env ABM_COMM_LARGE=1)
  endif()
  set_tests_properties(comm_test_np${np} PROPERTIES
    LABELS mpi TIMEOUT 300 PROCESSORS ${np} RUN_SERIAL TRUE ENVIRONMENT "${env}")
endforeach()
