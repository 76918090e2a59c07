# abm_test: the ABM loss/gradient vs a torch reference, information loss vs explicit
# projectors, ABM behaviour, and 1 rank == 2 ranks under real mpirun (label mpi).
# abm_pipeline_test: ABM over pipeline stages (global == one stage, shard == per-stage
# reference, batch from rank 0, a killed stage ends the job) under real mpirun.
foreach(t abm_test abm_pipeline_test)
  abm_test(${t} mpi ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cpp ${CMAKE_CURRENT_SOURCE_DIR}/abm_fixture.cpp)
  set_tests_properties(${t} PROPERTIES
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" RUN_SERIAL TRUE)
endforeach()
