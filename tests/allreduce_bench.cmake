# abmlora bench --what allreduce under mpirun -np 2 (label mpi): every row's #wrong column
# (elements differing from the exact sum) must be 0 and the table must reach 64 KiB.
add_test(NAME allreduce_bench_np2
         COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} 2
                 $<TARGET_FILE:abmlora> bench --what allreduce --max-bytes 65536 --iters 3)
set_tests_properties(allreduce_bench_np2 PROPERTIES
  LABELS mpi TIMEOUT 60 PROCESSORS 2
  PASS_REGULAR_EXPRESSION "65536 +16384 +float"
  FAIL_REGULAR_EXPRESSION " [1-9][0-9]*\n"
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
