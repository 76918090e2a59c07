// main() of the single-process test binaries (instead of gtest_main): every test runs with
// one intra-op thread unless it says otherwise, like one rank of the multi-rank jobs the
// tests compare with. LibTorch 2.x starts with one thread per core, and MKL's sums (so the
// last bits of a result) depend on the thread count.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  at::set_num_threads(1);
  return RUN_ALL_TESTS();
}
