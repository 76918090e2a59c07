// main() of a GoogleTest binary that ctest runs under mpirun (comm, sharding, checkpoints):
// MPI and one thread per rank; ranks > 0 print only their failures, tagged with the rank,
// so the log stays readable; a failure on any rank fails every rank's exit status.
#pragma once
#include <functional>

namespace abm::test {

// `tests` runs RUN_ALL_TESTS (with whatever communicators the binary's tests share set up
// around it) and returns true if any test failed.
int mpi_test_main(int argc, char** argv, const std::function<bool()>& tests);

}  // namespace abm::test
