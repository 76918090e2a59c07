// main() of the sanitizer parser tests: one intra-op thread, like the product's tests, and
// after every test no HDF5 object may be left open (leaked ids would otherwise hide behind
// the HDF5 leak suppression in lsan.supp).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdio>

namespace {

bool g_h5_leak = false;

struct NoOpenHdf5Objects : testing::EmptyTestEventListener {
  void OnTestEnd(const testing::TestInfo& info) override {
    ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open != 0) {
      std::fprintf(stderr, "FAILED: %s.%s left %zd HDF5 object(s) open\n", info.test_suite_name(),
                   info.name(), open);
      g_h5_leak = true;
      H5close();  // reset, so the next test is judged on its own
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new NoOpenHdf5Objects);
  at::set_num_threads(1);
  int rc = RUN_ALL_TESTS();
  return rc != 0 ? rc : (g_h5_leak ? 1 : 0);
}
