# deps_prefix: launch/debs.sh fetches the build's Debian libraries as .debs, refuses a
# damaged one, unpacks into a fresh prefix; CMake with -DABM_DEPS_PREFIX finds every
# library there and none in /usr; the relocated Open MPI runs 2 ranks (label unit; the
# build path of the GPU machine, which has no apt). Skips without apt downloads.
add_test(NAME deps_prefix COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deps_prefix_test.sh ${PROJECT_SOURCE_DIR})
# RUN_SERIAL: it failed once silently beside cli_errors_test (ctest -j2) and passed alone.
set_tests_properties(deps_prefix PROPERTIES LABELS unit TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
