// Device discipline without a GPU: the model's layers, LoRA, the boundary loss and the
// train step's forward and backward run with every weight and adapter on LibTorch's `meta`
// device (shapes, no data). A tensor made on the CPU by mistake meets a meta tensor in an op
// and fails. Parts that read values (.item(), the token-id check) stay where the data
// layer makes them: the CPU. Left out, because LibTorch's C++ build lacks meta kernels for
// them (Python registers many of its meta functions itself): the embedding lookup
// (index_select), and attention (masked_fill, and where inside SDPA); the tests that run
// both paths on the CPU cover those. The optimizer step (step engine) runs on meta up to its
// one read of the device, at its end. Also the --device rule (which GPU a local rank drives, the
// one-line error without one) and the CUDA generator field of checkpoints.
#include <gtest/gtest.h>

#include "abm/boundary_loss.h"
#include "abm/gate_tap.h"
#include "checkpoints/checkpoint_file.h"
#include "comm/local_communicator.h"
#include "core/check.h"
#include "core/device.h"
#include "data/batch.h"
#include "data/loss.h"
#include "lora/adapter_set.h"
#include "model/llama_layer.h"
#include "model/rope.h"
#include "model/llama_model.h"
#include "optim/step_engine.h"
#include "test_util.h"
#include "train/evaluate.h"

using namespace abm;
using namespace abm::test;

namespace {

LlamaConfig tiny() {
  LlamaConfig c;
  c.hidden = 64;
  c.intermediate = 128;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.vocab = 97;
  c.rms_eps = 1e-5;
  c.max_positions = 64;
  return c;
}

Batch batch(bool packed) {
  static std::vector<Example> ex(3);
  for (int e = 0; e < 3; ++e) {
    ex[e].ids.clear();
    ex[e].labels.clear();
    for (int i = 0; i < 7 + 3 * e; ++i) {
      ex[e].ids.push_back(1 + (i * 7 + e) % 90);
      ex[e].labels.push_back(i == 0 ? kIgnore : ex[e].ids.back());
    }
  }
  if (packed) return collate({{&ex[0], &ex[1]}, {&ex[2]}});
  return collate({{&ex[0]}, {&ex[1]}, {&ex[2]}});
}

}  // namespace

// Every part of a decoder layer but the attention kernel (norms, RoPE tables, the seven
// projections with their LoRA, SwiGLU, residuals), the head and the loss, forward and
// backward, on meta weights fed the data layer's CPU tensors.
TEST(Device, MetaModelLoraAndTrainStepMixNoCpuTensors) {
  const at::Device meta(at::kMeta);
  LlamaModel m = LlamaModel::random(tiny(), 1, at::kFloat, 0.02, meta);
  ASSERT_EQ(m.device(), meta);
  LoraConfig lc;
  lc.targets = {"all-linear"};
  lc.r = 4;
  AdapterSet a = AdapterSet::attach(m, lc);
  for (const at::Tensor& p : a.parameters()) ASSERT_EQ(p.device(), meta) << "LoRA on the model's device";
  Batch b = batch(true);  // the data layer's CPU tensors (ids, positions, labels)
  const LlamaConfig& c = m.config();
  const int64_t B = b.ids.size(0), T = b.ids.size(1);
  at::Tensor h = at::empty({B, T, c.hidden}, at::TensorOptions().device(meta));
  auto [cos, sin] = Rope(c).tables(b.positions.to(meta), m.dtype());
  for (const DecoderLayer& l : m.layers()) {
    at::Tensor x = rms_norm(h, l.input_norm, c.rms_eps);
    at::Tensor q = Rope::apply(l.q.forward(x).view({B, T, c.heads, c.head_dim}).transpose(1, 2), cos, sin);
    at::Tensor k = Rope::apply(l.k.forward(x).view({B, T, c.kv_heads, c.head_dim}).transpose(1, 2), cos, sin);
    at::Tensor v = l.v.forward(x);
    // Attention's shape without its kernel: q's and v's gradients still flow.
    at::Tensor att = (q.sum() + k.sum()) * v.repeat({1, 1, c.heads / c.kv_heads});
    h = h + l.o.forward(att);
    h = h + l.mlp(rms_norm(h, l.post_norm, c.rms_eps));
  }
  at::Tensor logits = m.head(h);
  EXPECT_EQ(logits.device(), meta);
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{B, T, 97}));
  TokenLoss tl = token_loss_sum(logits, b.labels);  // the count is read on the CPU
  EXPECT_GT(tl.count, 0);
  EXPECT_EQ(tl.sum.device(), meta);
  tl.sum.backward();
  for (const at::Tensor& p : a.parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().device(), meta);
  }
}

TEST(Device, MetaBoundaryLossThroughGateTaps) {
  const at::Device meta(at::kMeta);
  LlamaModel m = LlamaModel::random(tiny(), 1, at::kFloat, 0.02, meta);
  LoraConfig lc;
  lc.targets = {"gate_proj"};
  lc.r = 2;
  AdapterSet a = AdapterSet::attach(m, lc);
  at::Tensor real = at::ones({2, 5}, at::kBool);  // CPU, as pad_samples makes it
  at::Tensor x = at::empty({2, 5, 64}, at::TensorOptions().device(meta));
  at::Tensor on = at::empty({2, 5, 128}, at::TensorOptions(at::kBool).device(meta));
  at::Tensor L = boundary_loss_sum(m.layers()[0].gate.forward(x), on, real, 0.5) +
                 boundary_loss_sum(m.layers()[1].gate.forward(x), on, real, 0.5);
  EXPECT_EQ(L.device(), meta);
  L.backward();
  for (const at::Tensor& p : a.parameters()) EXPECT_TRUE(p.grad().defined());
}

// The optimizer step where the parameters are: the micro-batches' losses stay there, the
// totals go up, the gradient is gathered, scaled by 1/count, clipped and applied by AdamW,
// all without reading the device; the step's one read of it comes last. On meta that read
// is the first thing that cannot run, so the step stops exactly there, after the update.
TEST(Device, MetaStepEngineReadsTheDeviceOnlyAtTheEnd) {
  const auto on_meta = at::TensorOptions().device(at::kMeta);
  std::vector<at::Tensor> params = {at::zeros({4, 3}, on_meta).requires_grad_(true),
                                    at::zeros({5}, on_meta).requires_grad_(true)};
  StepEngineOptions o;
  o.batch = 4;
  o.micro = 2;  // two micro-batches on this one rank
  o.clip = 1.0;
  LocalCommunicator group;
  StepEngine engine(params, o, group, nullptr);
  int micro = 0;
  try {
    engine.step(0, [&](const MicroBatch&) {
      at::Tensor L = params[0].sum() * 2 + params[1].pow(2).sum();
      L.backward();
      ++micro;
      MicroResult m;
      m.count = 3;
      m.device_loss = L.detach();
      return m;
    });
    ADD_FAILURE() << "a step on meta cannot read its totals";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_EQ(micro, 2);
    // The final read (a copy to the host), not .item() or a CPU/meta mix before it.
    EXPECT_NE(msg.find("Cannot copy out of meta tensor"), std::string::npos) << msg;
  }
  EXPECT_EQ(engine.optimizer().steps(), 1) << "AdamW ran before the read";
  for (const at::Tensor& p : params) EXPECT_EQ(p.grad().device(), at::Device(at::kMeta));
}

TEST(Device, RanksPickTheirLocalGpuAndCudaWithoutOneIsOneLine) {
  EXPECT_EQ(pick_device("auto", 0, 3, "--device"), at::Device(at::kCPU));
  EXPECT_EQ(pick_device("cpu", 4, 1, "--device"), at::Device(at::kCPU));
#ifdef ABM_TORCH_CUDA
  EXPECT_EQ(pick_device("auto", 4, 1, "--device"), at::Device(at::kCUDA, 1));
  EXPECT_EQ(pick_device("cuda", 4, 5, "--device"), at::Device(at::kCUDA, 1));
  EXPECT_EQ(pick_device("cuda", 2, 0, "--device"), at::Device(at::kCUDA, 0));
#endif
  try {
    pick_device("cuda", 0, 0, "--device");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--device cuda: "), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
  EXPECT_THROW(pick_device("gpu", 1, 0, "--device"), Error);
  if (cuda_devices() > 0) GTEST_SKIP() << "a GPU is visible: the CLI check below expects none";
  TempDir tmp;
  const std::string model = std::string(ABM_SOURCE_DIR) + "/models/default";
  for (const std::string& args :
       {"eval --model " + model + " --data /dev/null",
        "export --model " + model + " --adapter " + tmp.path + " --merge " + tmp.path + "/merged"}) {
    RunResult r = run(std::string(ABM_BINARY) + " " + args + " --device cuda");
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("abmlora: error: --device cuda: "), std::string::npos) << r.output;
  }
}

// A checkpoint's /rng may hold a CUDA generator state next to the CPU's: it round-trips,
// and one without it (CPU-written) reads the same way (the trainer then keeps its own).
TEST(Device, CheckpointRngFieldsRoundTripWithAndWithoutCuda) {
  TempDir tmp;
  CheckpointState s;
  s.step = 2;
  s.global_batch = 4;
  s.samples_seen = 8;
  s.world_size = 1;
  s.trainable = {{"m.lora_A", at::ones({3})}};
  s.optimizer.exp_avg = {at::zeros({3})};
  s.optimizer.exp_avg_sq = {at::zeros({3})};
  at::Tensor cuda_state = at::arange(16, at::kByte);  // a CUDA generator state's shape: bytes
  for (bool with_cuda : {true, false}) {
    s.rng = {{"torch_cpu", at::detail::getDefaultCPUGenerator().get_state()}};
    if (with_cuda) s.rng.push_back({"torch_cuda", cuda_state});
    const std::string path = tmp / (with_cuda ? "gpu.h5" : "cpu.h5");
    write_checkpoint_file(path, s);
    CheckpointState r = read_checkpoint(path);
    ASSERT_EQ(r.rng.size(), with_cuda ? 2u : 1u);
    bool found = false;
    for (auto& [name, t] : r.rng)
      if (name == "torch_cuda") found = at::equal(t, cuda_state);
    EXPECT_EQ(found, with_cuda);
  }
}
