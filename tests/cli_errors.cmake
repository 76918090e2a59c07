# cli_errors_test: every bad-input path of the real abmlora binary (exit 2, one clear
# error line, no backtrace), including two-rank jobs under mpirun (label unit).
abm_test(cli_errors_test unit ${CMAKE_CURRENT_SOURCE_DIR}/cli_errors_test.cpp)
set_tests_properties(cli_errors_test PROPERTIES
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
