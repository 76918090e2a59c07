// The hand-written train step (train/backprop.h, train/attention.h) against LibTorch
// autograd through the model's own forward (the reference path): loss and every gradient,
// LoRA and full-parameter, GQA, padding, packing, dropout, bf16; and activation
// recomputation, which must give bitwise the same loss and gradients.
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cstring>

#include "data/batch.h"
#include "data/loss.h"
#include "data/sampler.h"
#include "lora/adapter_set.h"
#include "lora/init.h"
#include "test_util.h"
#include "train/attention.h"
#include "train/causal_softmax.h"
#include "train/backprop.h"
#include "train/evaluate.h"
#include "train/task_pool.h"
#include "train/tensor_memory.h"

using namespace abm;
using namespace abm::test;

namespace {

LlamaConfig tiny_config(bool tied) {
  LlamaConfig c;
  c.hidden = 64;
  c.intermediate = 176;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;  // GQA
  c.head_dim = 16;
  c.vocab = 97;
  c.rms_eps = 1e-5;
  c.max_positions = 128;
  c.tie_embeddings = tied;
  return c;
}

// Rows of varied lengths (padding), some with untrained prompt tokens; `packed` puts two
// examples in one row.
Batch make_test_batch(bool packed, uint64_t seed) {
  static std::vector<Example> ex;
  ex.clear();
  Rng rng(seed);
  for (int e = 0; e < 6; ++e) {
    Example x;
    int n = 9 + int(rng.below(30));
    for (int i = 0; i < n; ++i) {
      x.ids.push_back(i == 0 ? 1 : 3 + int64_t(rng.below(94)));
      x.labels.push_back(i == 0 || (e % 2 && i < 5) ? kIgnore : x.ids.back());
    }
    ex.push_back(x);
  }
  std::vector<std::vector<const Example*>> rows;
  if (packed) rows = {{&ex[0], &ex[1]}, {&ex[2]}, {&ex[3], &ex[4], &ex[5]}};
  else rows = {{&ex[0]}, {&ex[1]}, {&ex[2]}, {&ex[3]}};
  return collate(rows);
}

struct Grads {
  double loss = 0;
  int64_t count = 0;
  std::vector<at::Tensor> g;
};

std::vector<at::Tensor> take_grads(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> g;
  for (auto& p : params) {
    g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    const_cast<at::Tensor&>(p).mutable_grad() = at::Tensor();
  }
  return g;
}

Grads autograd_step(const LlamaModel& m, AdapterSet* a, const std::vector<at::Tensor>& params,
                    const Batch& b, uint64_t dropout_seed) {
  if (a) a->reseed_dropout(dropout_seed);
  TokenLoss tl = token_loss_sum(batch_logits(m, b), b.labels);
  tl.sum.backward();
  return {tl.sum.item<double>(), tl.count, take_grads(params)};
}

Grads manual_step(LlamaModel& m, AdapterSet* a, const std::vector<at::Tensor>& params,
                  const Batch& b, uint64_t dropout_seed, bool recompute, int64_t block = 128) {
  if (a) a->reseed_dropout(dropout_seed);
  Backprop bp(m, a, recompute);
  bp.set_attention_block(block);
  LossSum ls = bp.run(b);
  return {ls.sum, ls.count, take_grads(params)};
}

void expect_close(const Grads& x, const Grads& y, double tol, const char* what) {
  EXPECT_EQ(x.count, y.count) << what;
  EXPECT_LE(std::abs(x.loss - y.loss), tol * std::abs(y.loss)) << what << ": " << x.loss << " vs " << y.loss;
  ASSERT_EQ(x.g.size(), y.g.size());
  for (size_t i = 0; i < x.g.size(); ++i) {
    double scale = y.g[i].abs().max().item<double>();
    EXPECT_GT(scale, 0) << what << " grad " << i << " is zero: the test would prove nothing";
    EXPECT_LE(max_abs_diff(x.g[i], y.g[i]), tol * scale) << what << " grad " << i;
  }
}

void expect_bitwise(const Grads& x, const Grads& y, const char* what) {
  EXPECT_EQ(x.loss, y.loss) << what;
  ASSERT_EQ(x.g.size(), y.g.size());
  for (size_t i = 0; i < x.g.size(); ++i) EXPECT_TRUE(at::equal(x.g[i], y.g[i])) << what << " grad " << i;
}

struct LoraFixture {
  LlamaModel model;
  std::unique_ptr<AdapterSet> set;
  std::vector<at::Tensor> params;
  LoraFixture(at::ScalarType dt, double dropout, bool tied = false) {
    model = LlamaModel::random(tiny_config(tied), 5, dt, 0.08);
    LoraConfig lc;
    lc.targets = {"all-linear"};
    lc.r = 4;
    lc.alpha = 8;
    lc.dropout = dropout;
    lc.seed = 3;
    set = std::make_unique<AdapterSet>(AdapterSet::attach(model, lc));
    set->set_train(true);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
    at::NoGradGuard ng;
    for (auto& m : set->modules()) m.lora->B().normal_(0.0, 0.1, gen);  // every term non-zero
    params = set->parameters();
  }
};

}  // namespace

TEST(Attention, TilesEqualWholeRows) {
  // Tiles of 5 rows (T = 23 is not a multiple) against one tile covering all rows.
  at::manual_seed(1);
  AttnDims d{2, 23, 4, 2, 8, 5};
  const int64_t N = 46;
  at::Tensor q = at::randn({N, 32}), k = at::randn({N, 16}), v = at::randn({N, 16}), dout = at::randn({N, 32});
  at::Tensor o1 = at::empty({N, 32}), o2 = at::empty({N, 32});
  attention_forward(d, q, k, v, {}, o1);
  AttnDims whole = d;
  whole.block = 1000;
  attention_forward(whole, q, k, v, {}, o2);
  EXPECT_LE(max_abs_diff(o1, o2), 1e-6);
  // against the model's semantics written with plain ops (GQA head h uses kv head h / 2)
  at::Tensor qh = q.view({2, 23, 4, 8}).transpose(1, 2);
  at::Tensor kh = k.view({2, 23, 2, 8}).transpose(1, 2).repeat_interleave(2, 1);
  at::Tensor vh = v.view({2, 23, 2, 8}).transpose(1, 2).repeat_interleave(2, 1);
  at::Tensor s = at::matmul(qh, kh.transpose(2, 3)) / std::sqrt(8.0);
  s.masked_fill_(at::ones({23, 23}, at::kBool).triu(1), -INFINITY);
  at::Tensor ref = at::matmul(at::softmax(s, -1), vh).transpose(1, 2).reshape({N, 32});
  EXPECT_LE(max_abs_diff(o1, ref), 1e-5);
  at::Tensor dq1 = at::empty({N, 32}), dk1 = at::empty({N, 16}), dv1 = at::empty({N, 16});
  at::Tensor dq2 = at::empty({N, 32}), dk2 = at::empty({N, 16}), dv2 = at::empty({N, 16});
  attention_backward(d, q, k, v, {}, dout, dq1, dk1, dv1);
  attention_backward(whole, q, k, v, {}, dout, dq2, dk2, dv2);
  EXPECT_LE(max_abs_diff(dq1, dq2), 1e-5);
  EXPECT_LE(max_abs_diff(dk1, dk2), 1e-5);
  EXPECT_LE(max_abs_diff(dv1, dv2), 1e-5);
  // Probabilities kept by the forward give bitwise the backward that recomputes them.
  at::Tensor probs = at::empty({2 * 4, attention_probs_per_head(d)});
  at::Tensor o3 = at::empty({N, 32});
  attention_forward(d, q, k, v, {}, o3, probs);
  EXPECT_TRUE(at::equal(o3, o1));
  at::Tensor dq3 = at::empty({N, 32}), dk3 = at::empty({N, 16}), dv3 = at::empty({N, 16});
  attention_backward(d, q, k, v, {}, dout, dq3, dk3, dv3, probs);
  EXPECT_TRUE(at::equal(dq3, dq1) && at::equal(dk3, dk1) && at::equal(dv3, dv1));
  // Tasks are independent, so 3 threads give the bits of 1 (the tests run single-threaded).
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  at::Tensor o4 = at::empty({N, 32});
  at::Tensor dq4 = at::empty({N, 32}), dk4 = at::empty({N, 16}), dv4 = at::empty({N, 16});
  attention_forward(d, q, k, v, {}, o4);
  attention_backward(d, q, k, v, {}, dout, dq4, dk4, dv4);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(o4, o1));
  EXPECT_TRUE(at::equal(dq4, dq1) && at::equal(dk4, dk1) && at::equal(dv4, dv1));
}

TEST(Attention, CausalSoftmaxEqualsMaskedSoftmax) {
  // A 6 x 9 tile of queries 3..8: row i sees keys 0..3+i. Scores span 200, so some
  // probabilities fall below e^-87 and must come out as (nearly) 0, not garbage.
  at::Tensor s = at::randn({6, 9}, at::kFloat).mul_(40);
  s[0][0] = 100;
  at::Tensor ref = at::softmax(s.masked_fill(at::ones({6, 9}, at::kBool).triu(4), -INFINITY), -1);
  at::Tensor got = s.clone();
  causal_softmax_(got.data_ptr<float>(), 6, 9, 3);
  EXPECT_LE(max_abs_diff(got, ref), 1e-6);
  EXPECT_EQ(got.narrow(1, 4, 5).triu().abs().sum().item<float>(), 0.0f) << "masked keys must be exactly 0";
  // backward: d/ds of sum(p * w) against autograd's
  at::Tensor w = at::randn({6, 9});
  at::Tensor x = s.clone().requires_grad_(true);
  (at::softmax(x.masked_fill(at::ones({6, 9}, at::kBool).triu(4), -INFINITY), -1) * w).sum().backward();
  at::Tensor dp = w.clone();
  softmax_backward_(got.data_ptr<float>(), dp.data_ptr<float>(), 6, 9);
  EXPECT_LE(max_abs_diff(dp, x.grad()), 1e-6);
}

TEST(TaskPool, RunsEachTaskOnceAndRethrowsTheFirstError) {
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  std::vector<int> hits(50, 0);
  for (int round = 0; round < 3; ++round)  // the same threads serve later jobs
    TaskPool::run(50, [&](int64_t t) { hits[t] += 1; });
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 3), 50);
  EXPECT_THROW(TaskPool::run(50, [](int64_t t) { if (t == 7) throw std::runtime_error("task 7"); }),
               std::runtime_error);
  int after = 0;  // the pool still works after a failed job, and its threads see grad mode off
  at::NoGradGuard ng;
  TaskPool::run(2, [&](int64_t) {
    if (!at::GradMode::is_enabled()) __atomic_add_fetch(&after, 1, __ATOMIC_SEQ_CST);
  });
  at::set_num_threads(threads);
  EXPECT_EQ(after, 2);
}

TEST(Backprop, LoraMatchesAutograd) {
  for (bool packed : {false, true}) {
    LoraFixture f(at::kFloat, 0.0);
    Batch b = make_test_batch(packed, 21);
    Grads ref = autograd_step(f.model, f.set.get(), f.params, b, 7);
    Grads got = manual_step(f.model, f.set.get(), f.params, b, 7, false);
    expect_close(got, ref, 1e-5, packed ? "packed" : "padded");
    Grads small = manual_step(f.model, f.set.get(), f.params, b, 7, false, /*block=*/4);
    expect_close(small, ref, 1e-5, "attention tiles of 4 rows");
  }
}

TEST(Backprop, LoraWithDropoutMatchesAutograd) {
  // Same masks as LoraLinear::forward draws them: the module generators, same order.
  LoraFixture f(at::kFloat, 0.2, /*tied=*/true);
  Batch b = make_test_batch(true, 22);
  Grads ref = autograd_step(f.model, f.set.get(), f.params, b, 8);
  Grads got = manual_step(f.model, f.set.get(), f.params, b, 8, false);
  expect_close(got, ref, 1e-5, "dropout 0.2");
  Grads other = manual_step(f.model, f.set.get(), f.params, b, 9, false);
  EXPECT_NE(other.loss, got.loss) << "another dropout seed must change the loss";
}

TEST(Backprop, RecomputeIsBitwiseIdentical) {
  for (double p : {0.0, 0.2}) {
    LoraFixture f(at::kFloat, p);
    Batch b = make_test_batch(false, 23);
    Grads plain = manual_step(f.model, f.set.get(), f.params, b, 10, false);
    Grads again = manual_step(f.model, f.set.get(), f.params, b, 10, true);
    expect_bitwise(again, plain, p > 0 ? "recompute, dropout 0.2" : "recompute");
  }
  // full-parameter mode too
  LlamaModel m = LlamaModel::random(tiny_config(true), 6, at::kFloat, 0.08);
  std::vector<at::Tensor> params;
  for (auto& [n, w] : m.named_weights()) params.push_back(w);
  Batch b = make_test_batch(true, 24);
  Grads plain = manual_step(m, nullptr, params, b, 0, false);
  Grads again = manual_step(m, nullptr, params, b, 0, true);
  expect_bitwise(again, plain, "recompute, full");
}

TEST(Backprop, RowSlicesOnThreadsMatchAutograd) {
  // With 3 intra-op threads and no dropout, run() splits the rows into 3 slices run side by
  // side; the result must still be the autograd one, and the same bits every time
  // (with and without recomputation), also in full-parameter mode and with packed rows.
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  for (bool packed : {false, true}) {
    LoraFixture f(at::kFloat, 0.0);
    Batch b = make_test_batch(packed, 26);
    ASSERT_GE(b.rows(), 3);
    Grads ref = autograd_step(f.model, f.set.get(), f.params, b, 7);
    Grads got = manual_step(f.model, f.set.get(), f.params, b, 7, false);
    expect_close(got, ref, 1e-5, packed ? "slices, packed" : "slices");
    expect_bitwise(manual_step(f.model, f.set.get(), f.params, b, 7, false), got, "slices again");
    expect_bitwise(manual_step(f.model, f.set.get(), f.params, b, 7, true), got, "slices, recompute");
  }
  LlamaModel m = LlamaModel::random(tiny_config(false), 6, at::kFloat, 0.08);
  std::vector<at::Tensor> params;
  for (auto& [n, w] : m.named_weights()) params.push_back(w.requires_grad_(true));
  Batch b = make_test_batch(true, 27);
  Grads ref = autograd_step(m, nullptr, params, b, 0);
  Grads got = manual_step(m, nullptr, params, b, 0, false);
  for (auto& p : params) p.requires_grad_(false);
  at::set_num_threads(threads);
  expect_close(got, ref, 1e-5, "slices, full");
}

TEST(Backprop, FullMatchesAutograd) {
  for (bool tied : {false, true}) {
    LlamaModel m = LlamaModel::random(tiny_config(tied), 6, at::kFloat, 0.08);
    std::vector<at::Tensor> params;
    for (auto& [n, w] : m.named_weights()) params.push_back(w.requires_grad_(true));
    {
      at::NoGradGuard ng;  // norms away from 1, so their gradients are exercised
      for (auto& [n, w] : m.named_weights())
        if (w.dim() == 1) w.uniform_(0.5, 1.5);
    }
    Batch b = make_test_batch(true, 25);
    Grads ref = autograd_step(m, nullptr, params, b, 0);
    Grads got = manual_step(m, nullptr, params, b, 0, false);
    expect_close(got, ref, 1e-5, tied ? "full, tied" : "full, untied");
    for (auto& p : params) p.requires_grad_(false);
  }
}

TEST(Backprop, Bf16IsAsAccurateAsAutograd) {
  // bf16 rounds after every op, and the two paths sum in different orders, so they differ by
  // bf16 noise (a few % of a gradient here). The meaningful check: against the same model
  // computed in fp32 (weights equal to the bf16 ones), the hand-written bf16 gradients are
  // no less accurate than autograd's bf16 gradients.
  LoraFixture f16(at::kBFloat16, 0.1), f32(at::kFloat, 0.1);
  {
    at::NoGradGuard ng;  // same draws as the bf16 model, rounded like it
    for (auto& [n, w] : f32.model.named_weights()) w.copy_(w.to(at::kBFloat16).to(at::kFloat));
  }
  Batch b = make_test_batch(false, 26);
  Grads exact = manual_step(f32.model, f32.set.get(), f32.params, b, 11, false);
  Grads ref = autograd_step(f16.model, f16.set.get(), f16.params, b, 11);
  Grads got = manual_step(f16.model, f16.set.get(), f16.params, b, 11, false);
  auto rel_err = [&](const Grads& g) {
    double num = 0, den = 0;
    for (size_t i = 0; i < g.g.size(); ++i) {
      num += (g.g[i] - exact.g[i]).pow(2).sum().item<double>();
      den += exact.g[i].pow(2).sum().item<double>();
    }
    return std::sqrt(num / den);
  };
  double e_ref = rel_err(ref), e_got = rel_err(got);
  std::printf("bf16 gradients, relative error against fp32: autograd %.4f, hand-written %.4f\n",
              e_ref, e_got);
  EXPECT_LT(e_ref, 0.1);
  EXPECT_LE(e_got, 1.25 * e_ref) << "hand-written bf16 " << e_got << " vs autograd bf16 " << e_ref;
  EXPECT_LE(std::abs(got.loss - exact.loss), 1e-2 * exact.loss);
  EXPECT_LE(std::abs(ref.loss - exact.loss), 1e-2 * exact.loss);
  Grads again = manual_step(f16.model, f16.set.get(), f16.params, b, 11, true);
  expect_bitwise(again, got, "bf16 recompute");
}

// The step-memory counter replaces c10's CPU allocator. oneDNN's bf16 kernels take scratch
// memory through Allocator::raw_allocate, which asserts that a DataPtr's context is its
// data pointer (it failed with "dptr.get() == dptr.get_context()" on AMX machines when the
// counter wrapped the allocation), and frees it through raw_deleter.
TEST(TensorMemory, CountsAndServesRawAllocations) {
  TensorMemory::install();
  c10::Allocator* a = c10::GetCPUAllocator();
  const int64_t before = TensorMemory::current();
  void* p = a->raw_allocate(1 << 20);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(TensorMemory::current() - before, 1 << 20);
  std::memset(p, 1, 1 << 20);
  a->raw_deallocate(p);
  EXPECT_EQ(TensorMemory::current(), before);
  {
    at::Tensor t = at::ones({1024, 256});  // 1 MiB through the tensor path
    EXPECT_GE(TensorMemory::current() - before, 1 << 20);
    at::Tensor u = at::mm(t.to(at::kBFloat16), t.t().to(at::kBFloat16));  // oneDNN bf16
    EXPECT_EQ(u.scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(TensorMemory::current(), before);
}

// The autograd path (LibTorch's kernels, what a GPU runs) equals the hand-written CPU step
// in fp32, with attention through at::scaled_dot_product_attention and with the scores
// materialized, padded and packed: loss and every gradient within 1e-5 relative.
TEST(Backprop, AutogradWithSdpaOrMaterializedAttentionMatches) {
  for (const char* attention : {"sdpa", "math"}) {
    for (bool packed : {false, true}) {
      LoraFixture f(at::kFloat, 0.0);
      f.model.set_attention(attention);
      Batch b = make_test_batch(packed, 11);
      Grads ag = autograd_step(f.model, f.set.get(), f.params, b, 1);
      Grads mn = manual_step(f.model, f.set.get(), f.params, b, 1, false);
      const std::string what = std::string(attention) + (packed ? ", packed" : ", padded");
      expect_close(ag, mn, 1e-5, what.c_str());
    }
  }
}

// --recompute on the autograd path (what a GPU runs): per-layer recomputation gives the
// loss and every gradient of the plain autograd step bit for bit, with LoRA dropout on (the
// recomputed forward draws the same masks) and with both attentions.
TEST(Backprop, AutogradRecomputeIsBitwise) {
  for (const char* attention : {"sdpa", "math"}) {
    LoraFixture f(at::kFloat, 0.1);
    f.model.set_attention(attention);
    Batch b = make_test_batch(true, 12);
    Grads plain = autograd_step(f.model, f.set.get(), f.params, b, 4);
    f.model.set_recompute(true);
    Grads rc = autograd_step(f.model, f.set.get(), f.params, b, 4);
    f.model.set_recompute(false);
    expect_bitwise(rc, plain, attention);
    expect_close(rc, plain, 1e-6, attention);  // and not all zero
  }
}
