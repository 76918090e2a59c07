// main() of the single-process test binaries (instead of gtest_main): every test runs with
// one intra-op thread unless it says otherwise, like one rank of the multi-rank jobs the
// tests compare with. LibTorch 2.x starts with one thread per core, and MKL's sums (so the
// last bits of a result) depend on the thread count.
// The abmlora processes the tests start compute in fp32 unless a test asks for bf16:
// --dtype auto sees equal measured figures (ABM_MATMUL_GFLOPS), whatever this CPU is.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  at::set_num_threads(1);
  setenv("ABM_MATMUL_GFLOPS", "fp32=1,bf16=1", /*overwrite=*/0);
  return RUN_ALL_TESTS();
}
