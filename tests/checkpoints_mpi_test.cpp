// Under mpirun -np 2 / -np 3: ranks agree on stopping when only one rank got a real signal
// (raise(SIGUSR1)) or ran out of its time budget, and a checkpoint written by rank 0 and
// found by find_resume on rank 0 reaches every rank bit for bit (broadcast_state) — the
// flow the Trainer uses for stop-checkpoint-resume.
#include <gtest/gtest.h>
#include <mpi.h>
#include <signal.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>

#include "checkpoints/checkpoint_dir.h"
#include "checkpoints/resume.h"
#include "checkpoints/state_broadcast.h"
#include "checkpoints/xxh64.h"
#include "comm/mpi_communicator.h"
#include "core/runtime.h"
#include "lora/adapter_set.h"
#include "train/stop_signal.h"
#include "mpi_test_main.h"

namespace {

using namespace abm;

MpiCommunicator* g_comm = nullptr;
int rank() { return Runtime::rank(); }
int nranks() { return Runtime::size(); }

int64_t all_min(int64_t v) {
  int64_t out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
  return out;
}
int64_t all_max(int64_t v) {
  int64_t out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

TEST(StopAgreement, OneSignalledRankStopsAll) {
  install_stop_handlers();
  clear_stop_signal();
  TimeBudget none;
  const int signalled = nranks() - 1, at_step = 5;
  int64_t stopped_at = -1;
  std::string reason;
  for (int step = 0; step < 20 && stopped_at < 0; ++step) {
    if (rank() == signalled && step == at_step) ASSERT_EQ(::raise(SIGUSR1), 0);
    StopDecision d = agree_to_stop(*g_comm, none);
    if (d.stop) stopped_at = step, reason = d.reason;
  }
  EXPECT_EQ(stop_signal_received(), rank() == signalled ? SIGUSR1 : 0);
  EXPECT_EQ(stopped_at, at_step);
  EXPECT_EQ(all_min(stopped_at), all_max(stopped_at));
  EXPECT_EQ(reason, "SIGUSR1");
  clear_stop_signal();
  restore_default_handlers();
}

TEST(StopAgreement, BudgetOnOneRankAndSignalsWin) {
  clear_stop_signal();
  TimeBudget none, spent(1e-6, 0);
  spent.record_step(1);
  StopDecision d = agree_to_stop(*g_comm, rank() == 0 ? spent : none);
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.reason.rfind("time budget", 0), 0u) << d.reason;
  // A signal on the last rank and the budget on rank 0: every rank names the signal.
  install_stop_handlers();
  if (rank() == nranks() - 1) ::raise(SIGTERM);
  d = agree_to_stop(*g_comm, rank() == 0 ? spent : none);
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.reason, "SIGTERM");
  clear_stop_signal();
  restore_default_handlers();
  EXPECT_FALSE(agree_to_stop(*g_comm, none).stop);
}

// The same state on every rank (same seed, same library), so receivers can compare.
CheckpointState reference_state() {
  at::manual_seed(11);
  CheckpointState s;
  s.step = 12;
  s.samples_seen = 96;
  s.global_batch = 8;
  s.world_size = nranks();
  s.config = "lora-r = 2\nseed = 3\n";
  s.base_model = "/m";
  s.base_fingerprint = "00000000000000aa";
  s.lora = LoraConfig{};
  for (int64_t l = 0; l < 2; ++l)
    for (const char* k : {"q_proj", "v_proj"}) {
      s.trainable.emplace_back(lora_module_name(l, k) + ".lora_A", at::randn({2, 6}));
      s.trainable.emplace_back(lora_module_name(l, k) + ".lora_B", at::randn({6, 2}));
    }
  for (auto& [n, t] : s.trainable) {
    s.optimizer.exp_avg.push_back(at::randn_like(t));
    s.optimizer.exp_avg_sq.push_back(at::rand_like(t));
  }
  s.optimizer.step = 12;
  s.scheduler.total = 50;
  s.sampler_seed = 3;
  s.rng.emplace_back("torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
  AbmProvenance a;
  a.samples = {1, 2, 3};
  a.loss = {0.5, 0.25};
  s.abm = a;
  return s;
}

bool same(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
         std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * a.element_size()) == 0;
}

TEST(BroadcastState, CheckpointFromRankZeroReachesEveryRank) {
  // Rank 0 makes a directory and writes; everyone learns its path.
  char dir[256] = {0};
  if (rank() == 0) {
    std::snprintf(dir, sizeof(dir), "%s/abmlora-mpi-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ASSERT_NE(::mkdtemp(dir), nullptr);
  }
  MPI_Bcast(dir, sizeof(dir), MPI_CHAR, 0, MPI_COMM_WORLD);
  const CheckpointState ref = reference_state();
  CheckpointState s;
  if (rank() == 0) {
    write_checkpoint(dir, ref);
    ResumePoint p = find_resume(dir);
    ASSERT_EQ(p.path, std::string(dir) + "/ckpt-00000012.h5");
    s = p.state;
  }
  broadcast_state(s, *g_comm, 0);
  EXPECT_EQ(s.step, ref.step);
  EXPECT_EQ(s.samples_seen, ref.samples_seen);
  EXPECT_EQ(s.config, ref.config);
  EXPECT_EQ(s.base_fingerprint, ref.base_fingerprint);
  ASSERT_TRUE(s.lora.has_value());
  EXPECT_EQ(s.lora->to_json(), ref.lora->to_json());
  EXPECT_EQ(s.optimizer.step, 12);
  EXPECT_EQ(s.scheduler.total, 50);
  EXPECT_EQ(s.sampler_seed, 3u);
  ASSERT_TRUE(s.abm.has_value());
  EXPECT_EQ(s.abm->samples, ref.abm->samples);
  EXPECT_EQ(s.abm->loss, ref.abm->loss);
  EXPECT_EQ(s.tool_version, ABM_VERSION);  // set by the writer, carried by the broadcast
  ASSERT_EQ(s.trainable.size(), ref.trainable.size());
  for (size_t i = 0; i < ref.trainable.size(); ++i) {
    EXPECT_EQ(s.trainable[i].first, ref.trainable[i].first);
    EXPECT_TRUE(same(s.trainable[i].second, ref.trainable[i].second));
    EXPECT_TRUE(same(s.optimizer.exp_avg[i], ref.optimizer.exp_avg[i]));
    EXPECT_TRUE(same(s.optimizer.exp_avg_sq[i], ref.optimizer.exp_avg_sq[i]));
  }
  ASSERT_EQ(s.rng.size(), 1u);
  EXPECT_TRUE(same(s.rng[0].second, ref.rng[0].second));
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank() == 0) std::system((std::string("rm -rf '") + dir + "'").c_str());
}
}  // namespace

int main(int argc, char** argv) {
  return abm::test::mpi_test_main(argc, argv, [] {
    MpiCommunicator comm;
    g_comm = &comm;
    const bool failed = RUN_ALL_TESTS() != 0;
    g_comm = nullptr;
    return failed;
  });
}
