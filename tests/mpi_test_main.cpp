#include "mpi_test_main.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "core/runtime.h"

namespace abm::test {
namespace {

class FailurePrinter : public testing::EmptyTestEventListener {
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", Runtime::rank(),
                   r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }
};

}  // namespace

int mpi_test_main(int argc, char** argv, const std::function<bool()>& tests) {
  testing::InitGoogleTest(&argc, argv);
  Runtime::init(&argc, &argv);
  Runtime::set_threads(1);
  setenv("ABM_MATMUL_GFLOPS", "fp32=1,bf16=1", 0);  // --dtype auto: fp32 (test_main.cpp)
  if (Runtime::rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter);
  }
  int failed = tests() ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  Runtime::finalize();
  return any;
}

}  // namespace abm::test
