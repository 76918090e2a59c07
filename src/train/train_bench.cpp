#include "train/train_bench.h"

#include <ATen/CPUGeneratorImpl.h>

#include <sys/resource.h>

#include <algorithm>

#include "core/check.h"
#include "core/device.h"
#include "core/timer.h"
#include "data/batch.h"
#include "train/evaluate.h"
#include "data/sampler.h"
#include "lora/adapter_set.h"
#include "train/compute_dtype.h"
#include "train/flops.h"
#include "train/tensor_memory.h"
#include "train/trainer.h"

namespace abm {

TrainBenchResult bench_train(const TrainBenchOptions& o, Communicator& comm) {
  at::AutoGradMode grad_on(true);  // callers may hold a NoGradGuard; autograd backprop needs it
  TensorMemory::install();
  LlamaConfig c;
  c.hidden = o.hidden;
  c.intermediate = o.intermediate;
  c.layers = o.layers;
  c.heads = o.heads;
  c.kv_heads = o.kv_heads;
  c.head_dim = o.hidden / o.heads;
  c.vocab = o.vocab;
  c.max_positions = o.seq;
  c.rms_eps = 1e-5;
  const at::Device device = resolve_device(o.device);
  const at::ScalarType dt =
      o.full ? at::kFloat : resolve_compute_dtype(o.dtype, c, &comm, "--dtypes", device).dtype;
  ABM_REQUIRE(!o.full || o.dtype != "bf16", "bench: full training runs in fp32");
  // On a GPU the random weights are drawn there: a 7B geometry needs no file.
  LlamaModel model = LlamaModel::random(c, 0, dt, 0.02, device);

  TrainConfig tc;
  tc.out = "";  // no run directory
  tc.dtype = compute_dtype_name(dt);
  tc.full = o.full;
  tc.lora_r = o.lora_r;
  tc.lora_alpha = o.lora_alpha;
  tc.lora_dropout = o.lora_dropout;
  tc.lora_targets = o.targets;
  tc.global_batch = o.micro * comm.size();
  tc.micro_batch = o.micro;
  tc.steps = o.warmup + o.steps;
  tc.lr = 1e-4;
  tc.recompute = o.recompute;
  tc.backprop = o.backprop;
  tc.drift_check_every = 0;
  tc.validate(comm.size());
  std::unique_ptr<AdapterSet> adapters;
  if (!o.full) {
    adapters = std::make_unique<AdapterSet>(AdapterSet::attach(model, tc.lora()));
    at::NoGradGuard ng;  // B = 0 at init; random B makes every LoRA term do real work
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    for (auto& m : adapters->modules())
      m.lora->B().copy_(at::normal(0.0, 0.01, m.lora->B().sizes(), gen));
  }

  // Random token ids, every position but the first of a row trained: one row per sample.
  DataSplits data;
  Rng rng(7);
  for (int64_t i = 0; i < tc.global_batch; ++i) {
    Example ex;
    for (int64_t t = 0; t < o.seq; ++t) {
      ex.ids.push_back(int64_t(rng.below(uint64_t(o.vocab))));
      ex.labels.push_back(t == 0 ? kIgnore : ex.ids.back());
    }
    data.train.examples.push_back(std::move(ex));
    data.train.rows.push_back({i});
  }

  TrainBenchResult r;
  r.dtype = compute_dtype_name(dt);
  Trainer trainer(tc, model, adapters.get(), data, comm);
  if (o.attn_block > 0 && trainer.backprop()) trainer.backprop()->set_attention_block(o.attn_block);
  for (auto& p : trainer.params()) r.trainable += p.numel();
  r.peak_gflops = std::max(trainer.peak_gflops(), matmul_peak_gflops(1024, dt, o.peak_reps, device));
  r.flops_per_token = train_flops_per_token(c, o.seq, o.full);
  std::vector<double> secs;
  double step_total = 0;
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    if (s == o.warmup && o.profile && trainer.backprop()) trainer.backprop()->set_profile(true);
    TensorMemory::reset_peak();
    reset_device_peak(device);
    const int64_t before = TensorMemory::current();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    StepResult sr = trainer.train_step();  // ends with a host read: the device is done
    getrusage(RUSAGE_SELF, &ru1);
    r.step_tensor_mib = std::max(r.step_tensor_mib, (TensorMemory::peak() - before) / 1048576.0);
    r.device_peak_mib = std::max(r.device_peak_mib, device_peak_bytes(device) / 1048576.0);
    r.loss = sr.loss;
    if (s >= o.warmup) {
      secs.push_back(sr.seconds);
      step_total += sr.seconds;
      r.minor_faults += double(ru1.ru_minflt - ru0.ru_minflt) / o.steps;
    }
  }
  if (o.profile && trainer.backprop()) {
    double parts = 0;
    for (auto& [name, sec] : trainer.backprop()->profile()) {
      r.profile[name] = sec / o.steps;
      parts += sec;
    }
    r.profile["rest of the step"] = (step_total - parts) / o.steps;
  }
  // The slowest rank sets the pace of a data-parallel step.
  at::Tensor t = at::tensor(secs, at::kDouble);
  comm.all_reduce(t, ReduceOp::Max);
  secs.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  std::sort(secs.begin(), secs.end());
  const double tokens = double(tc.global_batch * o.seq);
  r.best_step_s = secs.front();
  r.tokens_per_s = tokens / secs.front();
  r.median_tokens_per_s = tokens / secs[secs.size() / 2];
  if (!device.is_cpu()) {  // the breakdown off the CPU: a forward of the same batch
    at::NoGradGuard ng;
    Batch b = make_batch(data.train, std::vector<int64_t>(size_t(o.micro), 0));
    batch_logits(model, b);
    synchronize(device);
    Timer t;
    batch_logits(model, b);
    synchronize(device);
    r.forward_s = t.seconds();
  }
  // a second peak measurement after the steps: the machine may have been busier before
  r.peak_gflops = std::max(r.peak_gflops, matmul_peak_gflops(1024, dt, o.peak_reps, device));
  at::Tensor peaks = at::tensor({r.peak_gflops}, at::kDouble);
  comm.all_reduce(peaks);  // the job's peak: every rank's, each with its own threads
  r.mfu = r.tokens_per_s * r.flops_per_token / 1e9 / peaks.item<double>();
  return r;
}

void set_llama2_7b_geometry(TrainBenchOptions& o) {
  o.hidden = 4096;
  o.layers = 32;
  o.heads = 32;
  o.kv_heads = 32;
  o.intermediate = 11008;
  o.vocab = 32000;
  o.seq = 2048;
  o.micro = 2;
  o.lora_r = 16;
  o.lora_alpha = 32;
  o.targets = "all-linear";
}

}  // namespace abm
