// The NCCL backend where there may be no GPU: it links (this binary exists), it fails
// with the one-line "no CUDA device" error (or, on a GPU machine, all-reduces correctly
// on one rank), and the pieces that need no GPU: launcher environment, local rank -> GPU,
// the id-file rendezvous (rank 0 in a thread, rank 1 here).
#include <gtest/gtest.h>
#include <cuda_runtime_api.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "comm/launcher_env.h"
#include "comm/nccl_communicator.h"
#include "core/check.h"
#include "core/runtime.h"
#include "test_util.h"

namespace {

using namespace abm;

bool have_gpu() {
  int n = 0;
  bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  (void)cudaGetLastError();
  return ok;
}

TEST(Nccl, NoDeviceIsOneLineErrorOrAllReduceIsExact) {
  if (!have_gpu()) {
    try {
      make_nccl_communicator();
      FAIL() << "no error";
    } catch (const abm::Error& e) {
      std::string msg = e.what();
      std::printf("  make_nccl_communicator(): %s\n", msg.c_str());
      EXPECT_EQ(msg.rfind("no CUDA device", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    return;
  }
  // GPU machine: one rank, sum of [1..1024] stays itself; max likewise.
  auto comm = make_nccl_communicator();
  std::vector<float> host(1024);
  for (int i = 0; i < 1024; ++i) host[i] = float(i + 1);
  float* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, host.size() * sizeof(float)), cudaSuccess);
  cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  comm->all_reduce_raw(dev, host.size(), ncclFloat32, ncclSum);
  comm->synchronize();
  std::vector<float> back(1024);
  cudaMemcpy(back.data(), dev, back.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dev);
  EXPECT_EQ(back, host);
  comm->barrier();
}

#ifdef ABM_WITH_NCCL
TEST(Nccl, CliBenchReportsNoDevice) {
  if (have_gpu()) GTEST_SKIP() << "GPU present";
  auto r = test::run(std::string(ABM_BINARY) + " bench --what allreduce --backend nccl 2>&1");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no CUDA device"), std::string::npos) << r.output;
}
#endif

TEST(LauncherEnv, FirstSetVariableWins) {
  for (const char* n : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"})
    unsetenv(n);
  EXPECT_EQ(launcher_local_rank(), -1);
  setenv("LOCAL_RANK", "3", 1);
  EXPECT_EQ(launcher_local_rank(), 3);
  setenv("SLURM_LOCALID", "1", 1);
  EXPECT_EQ(launcher_local_rank(), 1);
  setenv("SLURM_LOCALID", "x1", 1);
  EXPECT_THROW(launcher_local_rank(), abm::Error);
  unsetenv("SLURM_LOCALID");
  unsetenv("LOCAL_RANK");
}

TEST(LauncherEnv, OneRankPerGpu) {
  EXPECT_EQ(device_for_local_rank(1, 2), 1);
  try {
    device_for_local_rank(0, 0);
    FAIL();
  } catch (const abm::Error& e) {
    EXPECT_STREQ(e.what(), "no CUDA device");
  }
  try {
    device_for_local_rank(2, 2);
    FAIL();
  } catch (const abm::Error& e) {
    EXPECT_STREQ(e.what(), "local rank 2 has no GPU of its own: this node has 2 CUDA device(s); "
                           "launch at most one rank per GPU");
  }
}

TEST(IdFile, RankZeroWritesOthersRead) {
  test::TempDir dir;
  const std::string path = dir / "id";
  const std::string payload(128, '\x7f');
  bool wrote = false;
  std::thread rank0([&] {  // a moment late, so the reader really waits
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    wrote = share_via_file(path, 0, payload, 128, 5) == payload;
  });
  std::string got = share_via_file(path, 1, "", 128, 5);
  rank0.join();
  EXPECT_TRUE(wrote);
  EXPECT_EQ(got, payload);
  // A file of the wrong size (stale, other NCCL version) is an error, not a hang.
  std::ofstream(dir / "short") << "abc";
  EXPECT_THROW(share_via_file(dir / "short", 1, "", 128, 1), abm::Error);
  // Nobody writes: a clear timeout.
  try {
    share_via_file(dir / "never", 2, "", 128, 0.2);
    FAIL();
  } catch (const abm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not appear within 0.2 s"), std::string::npos) << e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  abm::Runtime::init(&argc, &argv);
  int rc = RUN_ALL_TESTS();
  abm::Runtime::finalize();
  return rc;
}
