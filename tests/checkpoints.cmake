# checkpoints_test: the HDF5 checkpoint store and the stop flag in one process (label unit):
# bitwise round trips, kill -9 mid-write, bit flips and truncation, refusal of another
# model or LoRA config, rotation, signals during a write, `abmlora inspect`.
# ABM_CKPT_BENCH=1 adds the 7B-sized write/read measurement next to dd's disk speed.
abm_test(checkpoints_test unit ${CMAKE_CURRENT_SOURCE_DIR}/checkpoints_test.cpp)
target_link_libraries(checkpoints_test PRIVATE ${CMAKE_DL_LIBS})

# checkpoints_mpi_test: under mpirun -np 2 and -np 3 (label mpi) — ranks agree to stop when
# one got SIGUSR1, and a checkpoint read on rank 0 reaches every rank bitwise.
# Own main() (MPI init/finalize around RUN_ALL_TESTS).
add_executable(checkpoints_mpi_test ${CMAKE_CURRENT_SOURCE_DIR}/checkpoints_mpi_test.cpp)
target_link_libraries(checkpoints_mpi_test PRIVATE abm_test_util)
target_precompile_headers(checkpoints_mpi_test REUSE_FROM abm_test_util)
foreach(np 2 3)
  add_test(NAME checkpoints_mpi_test_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} ${np}
                   $<TARGET_FILE:checkpoints_mpi_test>)
  set_tests_properties(checkpoints_mpi_test_np${np} PROPERTIES
    LABELS mpi TIMEOUT 300 PROCESSORS ${np}
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endforeach()
