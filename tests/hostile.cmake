# Hostile-input corpus (issue 17, tests/hostile/README.md): several hundred bad inputs for
# the real binary across train, abm-init, eval, generate, inspect, export, info-loss and
# report. Each must exit 2 within 20 s with one "abmlora: error:" line from rank 0 naming
# the file or option, no signal, no backtrace, under 1 GiB RSS.
#   hostile_corpus_1rank    the binary as a single rank (label unit)
#   hostile_corpus_2ranks   every case under mpirun -np 2 (label mpi)
foreach(ranks 1 2)
  if(ranks EQUAL 1)
    set(name hostile_corpus_1rank)
    set(label unit)
  else()
    set(name hostile_corpus_2ranks)
    set(label mpi)
  endif()
  add_test(NAME ${name}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/hostile/run_corpus.py
                   --abmlora $<TARGET_FILE:abmlora> --ranks ${ranks}
                   --source-dir ${PROJECT_SOURCE_DIR}
                   --work ${CMAKE_CURRENT_BINARY_DIR}/hostile-${ranks}rank --jobs 4)
  set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT 1200
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ABM_MATMUL_GFLOPS=fp32=1,bf16=1")
endforeach()
