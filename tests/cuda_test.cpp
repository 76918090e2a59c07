// The GPU path on a real device (label cuda; launch/gpu_check.sh runs it): the model
// forward on the GPU against the CPU's, a LoRA train step (LibTorch autograd, SDPA) against
// the CPU's hand-written step, SDPA against the materialized attention on the device,
// `export --merge --device cuda` against the CPU's merge, the train step's one host wait
// (LibTorch's sync debug mode), and the NCCL communicator
// carrying a step's gradients on one rank. Skipped with a message
// where no CUDA device is visible (every CPU machine).
#ifdef ABM_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>  // the sync debug mode
#endif
#include <c10/util/Backtrace.h>
#include <gtest/gtest.h>

#include <cmath>

#include "comm/communicator.h"
#include "mpi_test_main.h"
#include "core/device.h"
#include "data/batch.h"
#include "data/loss.h"
#include "lora/adapter_set.h"
#include "lora/peft_io.h"
#include "model/llama_model.h"
#include "test_util.h"
#include "train/backprop.h"
#include "train/evaluate.h"
#include "train/trainer.h"

using namespace abm;
using namespace abm::test;

namespace {

const std::string kModel = std::string(ABM_SOURCE_DIR) + "/models/default";

#define REQUIRE_GPU() \
  if (cuda_devices() == 0) GTEST_SKIP() << "no CUDA device visible (this test runs on a GPU machine)"

std::vector<Example> examples() {
  std::vector<Example> ex(4);
  for (int e = 0; e < 4; ++e) {
    ex[e].ids = {1};
    ex[e].labels = {kIgnore};
    for (int i = 1; i < 20 + 9 * e; ++i) {
      ex[e].ids.push_back(3 + (i * 37 + e * 11) % 2040);
      ex[e].labels.push_back(ex[e].ids.back());
    }
  }
  return ex;
}

Batch rows(bool packed) {
  static std::vector<Example> ex = examples();
  if (packed) return collate({{&ex[0], &ex[1]}, {&ex[2], &ex[3]}});
  return collate({{&ex[0]}, {&ex[1]}, {&ex[2]}, {&ex[3]}});
}

LlamaModel load(at::Device d, const std::string& attention) {
  LoadOptions lo;
  lo.device = d;
  lo.attention = attention;
  return LlamaModel::load(kModel, lo);
}

}  // namespace

TEST(Cuda, ForwardMatchesTheCpu) {
  REQUIRE_GPU();
  at::NoGradGuard ng;
  const at::Device gpu(at::kCUDA, 0);
  for (bool packed : {false, true}) {
    Batch b = rows(packed);
    at::Tensor cpu = batch_logits(load(at::kCPU, "math"), b);
    for (const char* attention : {"sdpa", "math"}) {
      at::Tensor dev = batch_logits(load(gpu, attention), b);
      ASSERT_TRUE(dev.is_cuda());
      const double d = max_abs_diff(dev.cpu(), cpu), scale = cpu.abs().max().item<double>();
      std::printf("GPU %s forward (fp32, %s) vs CPU: max|diff| %.3g of %.3g\n", attention,
                  packed ? "packed" : "padded", d, scale);
      EXPECT_LE(d, 1e-3 * scale) << attention;  // TF32 is off for fp32 matmuls by default
    }
  }
}

TEST(Cuda, LoraStepMatchesTheCpuHandWrittenStep) {
  REQUIRE_GPU();
  const at::Device gpu(at::kCUDA, 0);
  Batch b = rows(true);
  LoraConfig lc;
  lc.targets = {"all-linear"};
  lc.r = 4;
  std::vector<std::vector<at::Tensor>> grads;
  std::vector<double> losses;
  for (at::Device d : {at::Device(at::kCPU), gpu}) {
    LlamaModel m = load(d, "auto");
    AdapterSet a = AdapterSet::attach(m, lc);
    {
      at::NoGradGuard ng;
      for (auto& mod : a.modules()) mod.lora->B().fill_(0.01);  // every term non-zero
    }
    double loss = 0;
    if (d.is_cpu()) {
      Backprop bp(m, &a, false);
      loss = bp.run(b).sum;
    } else {
      TokenLoss tl = token_loss_sum(batch_logits(m, b), b.labels);
      tl.sum.backward();
      loss = tl.sum.item<double>();
    }
    losses.push_back(loss);
    std::vector<at::Tensor> g;
    for (auto& p : a.parameters()) g.push_back(p.grad().cpu());
    grads.push_back(g);
  }
  std::printf("LoRA step loss: CPU hand-written %.6f, GPU autograd %.6f\n", losses[0], losses[1]);
  EXPECT_NEAR(losses[1], losses[0], 1e-4 * std::abs(losses[0]));
  for (size_t i = 0; i < grads[0].size(); ++i) {
    const double scale = grads[0][i].abs().max().item<double>();
    EXPECT_GT(scale, 0) << i;
    EXPECT_LE(max_abs_diff(grads[1][i], grads[0][i]), 1e-3 * scale) << "grad " << i;
  }
}

TEST(Cuda, MergeOnTheDeviceEqualsTheCpuMerge) {
  REQUIRE_GPU();
  TempDir tmp;
  {
    LlamaModel m = load(at::kCPU, "math");
    LoraConfig lc;
    lc.targets = {"all-linear"};
    lc.r = 4;
    AdapterSet a = AdapterSet::attach(m, lc);
    at::NoGradGuard ng;
    for (auto& mod : a.modules()) mod.lora->B().normal_(0, 0.05);
    export_peft(a, kModel, tmp / "adapter");
  }
  merge_to_model_dir(kModel, tmp / "adapter", tmp / "cpu", at::kFloat, at::kCPU);
  merge_to_model_dir(kModel, tmp / "adapter", tmp / "gpu", at::kFloat, at::Device(at::kCUDA, 0));
  NamedTensors base = LlamaModel::load(kModel).named_weights();
  NamedTensors cpu = LlamaModel::load(tmp / "cpu").named_weights();
  NamedTensors gpu = LlamaModel::load(tmp / "gpu").named_weights();
  ASSERT_EQ(cpu.size(), gpu.size());
  double worst = 0, moved = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double scale = cpu[i].second.abs().max().item<double>();
    worst = std::max(worst, max_abs_diff(gpu[i].second, cpu[i].second) / scale);
    moved = std::max(moved, max_abs_diff(cpu[i].second, base[i].second));
  }
  std::printf("merge on the GPU vs the CPU: max relative diff %.3g (the adapter moved weights by %.3g)\n",
              worst, moved);
  EXPECT_GT(moved, 1e-4);  // the adapter is not a no-op
  EXPECT_LE(worst, 1e-5);
}

// Counts LibTorch's sync-debug warnings: one per call that makes the host wait for the GPU
// (.item(), a copy from pageable memory, a stream sync). Backward threads' warnings are
// replayed on the caller's thread. The first few print where they came from.
struct SyncCounter : c10::WarningHandler {
  int syncs = 0;
  void process(const c10::Warning& w) override {
    if (w.msg().find("synchronizing") == std::string::npos) return;
    if (++syncs > 1 && syncs <= 4) std::printf("sync %d at:\n%s\n", syncs, c10::get_backtrace(2, 24).c_str());
  }
};

// The train step on a GPU waits for it once, when it reads its totals after the update:
// two micro-batches (padded and packed rows, LoRA dropout on) make no other host round trip.
TEST(Cuda, TrainStepWaitsForTheDeviceOnce) {
  REQUIRE_GPU();
  LlamaModel m = load(at::Device(at::kCUDA, 0), "auto");
  TrainConfig tc;
  tc.out = "";
  tc.lora_r = 4;
  tc.lora_targets = "all-linear";
  tc.lora_dropout = 0.1;
  tc.global_batch = 4;
  tc.micro_batch = 2;
  tc.steps = 3;
  tc.drift_check_every = 0;
  tc.validate(1);
  AdapterSet a = AdapterSet::attach(m, tc.lora());
  DataSplits data;
  data.train.examples = examples();
  data.train.rows = {{0}, {1}, {2, 3}, {1, 2}};
  auto comm = make_mpi_communicator();
  Trainer t(tc, m, &a, data, *comm);
  t.train_step();  // the first: allocations, library handles, pinned blocks
  SyncCounter counter;
#ifdef ABM_TORCH_CUDA
  {
    c10::WarningUtils::WarningHandlerGuard guard(&counter);
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
    StepResult r = t.train_step();
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    EXPECT_TRUE(std::isfinite(r.loss));
  }
#endif
  std::printf("train step on the GPU (2 micro-batches): %d host wait(s)\n", counter.syncs);
  EXPECT_EQ(counter.syncs, 1);
}

TEST(Cuda, NcclCarriesGradientsOnOneRank) {
  REQUIRE_GPU();
  const at::Device gpu(at::kCUDA, 0);
  auto comm = make_device_communicator(gpu);
  at::Tensor g = at::arange(1000, at::TensorOptions(at::kFloat).device(gpu));
  at::Tensor want = g.clone();
  comm->all_reduce(g);
  EXPECT_TRUE(at::equal(g.cpu(), (want * comm->size()).cpu()));
}

int main(int argc, char** argv) {  // MPI up: the NCCL id travels over it
  return abm::test::mpi_test_main(argc, argv, [] { return RUN_ALL_TESTS() != 0; });
}
