#include "train/backprop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <malloc.h>

#include <cmath>

#include "core/check.h"
#include "core/timer.h"
#include "data/example.h"
#include "train/backprop_internal.h"
#include "train/layer_kernels.h"
#include "train/task_pool.h"

namespace abm {

using backprop_detail::GradSink;
using backprop_detail::UseSink;
using backprop_detail::grad_of;

namespace {

// Attention probabilities are kept for the backward when they take at most this per layer.
constexpr int64_t kProbsBudget = int64_t(64) << 20;

}  // namespace

Backprop::Backprop(LlamaModel& model, AdapterSet* adapters, bool recompute)
    : model_(model), adapters_(adapters), recompute_(recompute), full_(adapters == nullptr),
      rope_(model.config()) {
  ABM_CHECK(model.has_embedding() && model.has_head(), "Backprop needs the whole model");
  ABM_CHECK(!full_ || model.dtype() == at::kFloat, "full-parameter training runs in fp32");
  // Every step allocates and frees the same activation buffers (MiBs each). By default glibc
  // serves them with mmap or trims them off the heap when freed, so each step page-faults
  // all of its activation memory afresh (~150k faults per step on the bench model). Keep
  // freed memory in the heap instead: peak memory is unchanged, the faults go away.
  static const bool heap_kept = [] {
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)heap_kept;
  for (auto& [name, t] : model.named_weights()) {
    if (name == "model.embed_tokens.weight") embed_ = t;
    if (name == "model.norm.weight") norm_ = t;
    if (name == "lm_head.weight") head_ = t;
  }
  if (!head_.defined()) head_ = embed_;  // tied
  lora_.assign(model.layers().size(), {});
  if (adapters_) {
    for (const AdaptedModule& m : adapters_->modules()) {
      lora_.at(m.layer - model.first())[static_cast<int>(m.proj)] = m.lora.get();
    }
  }
  for (auto& l : model.layers())
    for_each_projection(l, [&](const ProjInfo&, const Linear& p) {
      bool ours = false;
      for (auto& row : lora_)
        for (LoraLinear* a : row) ours |= a && p.adapter.get() == a;
      ABM_CHECK(!p.adapter || ours, "Backprop: a projection carries an adapter that is not "
                "part of the trained AdapterSet");
    });
  // One weight tensor per input-sharing group (frozen weights only: in full mode the model's
  // weights are the optimizer's parameters and keep their own storage).
  fused_.assign(model.layers().size(), {});
  if (!full_) {
    at::NoGradGuard ng;
    for (size_t i = 0; i < model.layers().size(); ++i) {
      DecoderLayer& l = model.layers()[i];
      fused_[i][0] = at::cat({l.q.weight, l.k.weight, l.v.weight}, 0);
      const int64_t nq = l.q.weight.size(0), nk = l.k.weight.size(0);
      l.q.weight = fused_[i][0].narrow(0, 0, nq);
      l.k.weight = fused_[i][0].narrow(0, nq, nk);
      l.v.weight = fused_[i][0].narrow(0, nq + nk, l.v.weight.size(0));
      fused_[i][1] = at::cat({l.gate.weight, l.up.weight}, 0);
      const int64_t ng_ = l.gate.weight.size(0);
      l.gate.weight = fused_[i][1].narrow(0, 0, ng_);
      l.up.weight = fused_[i][1].narrow(0, ng_, l.up.weight.size(0));
    }
  }
}

const at::Tensor& Backprop::weight(size_t i, int kind) const {
  return projection(model_.layers()[i], static_cast<Proj>(kind)).weight;
}

int64_t Backprop::column(size_t i, Group g, int kind) const {
  int64_t c = 0;
  for (int k = g.first; k < kind; ++k) c += weight(i, k).size(0);
  return c;
}

at::Tensor Backprop::fused(size_t i, Group g) const {
  if (g.count == 1 || !fused_[i][0].defined()) return {};
  const at::Tensor& f = fused_[i][g.first == kQ ? 0 : 1];
  // Still the views this object made? (Someone may have assigned new weight tensors.)
  const char* base = static_cast<const char*>(f.data_ptr());
  for (int k = g.first; k < g.first + g.count; ++k) {
    const at::Tensor& w = weight(i, k);
    if (!w.is_contiguous() || w.data_ptr() != base + column(i, g, k) * w.size(1) * w.element_size())
      return {};
  }
  return f;
}

LoraLinear* Backprop::active(size_t i, int kind) const {
  LoraLinear* a = lora_[i][kind];
  return a && a->enabled() && !a->merged() ? a : nullptr;
}

bool Backprop::dropping(size_t i, int kind) const {
  LoraLinear* a = active(i, kind);
  return a && a->train() && a->dropout() > 0.0;
}

std::vector<at::Tensor> Backprop::save_rng(size_t i) const {
  std::vector<at::Tensor> s(kProjs);
  for (int k = 0; k < kProjs; ++k)
    if (dropping(i, k)) s[k] = lora_[i][k]->dropout_state();
  return s;
}

void Backprop::load_rng(size_t i, const std::vector<at::Tensor>& states) const {
  for (int k = 0; k < kProjs; ++k)
    if (states[k].defined()) lora_[i][k]->set_dropout_state(states[k]);
}

LossSum Backprop::head_loss(const at::Tensor& x, const at::Tensor& labels, const Ctx& c,
                            at::Tensor& dx) {
  ProfSpan span(this, "head + cross-entropy");
  const int64_t N = c.N, V = head_.size(0);
  at::Tensor r;
  at::Tensor xn = rms_forward(x, norm_, model_.config().rms_eps, r);
  // Position i is scored against labels[i + 1] (data/loss.h); the last position has none.
  at::Tensor tgt = at::cat({labels.narrow(1, 1, c.T - 1), at::full({c.B, 1}, kIgnore, at::kLong)}, 1)
                       .reshape({N});
  at::Tensor valid = tgt.ne(kIgnore);
  at::Tensor safe = tgt.clamp_min(0).unsqueeze(1);        // [N, 1]
  at::Tensor vf = valid.to(at::kFloat).unsqueeze(1);       // [N, 1]
  LossSum out;
  out.count = valid.sum().item<int64_t>();
  at::Tensor dxn = at::empty_like(xn);
  const int64_t chunk = std::max<int64_t>(64, (int64_t(1) << 21) / V);  // ~8 MiB of logits
  for (int64_t c0 = 0; c0 < N; c0 += chunk) {
    const int64_t n = std::min(chunk, N - c0);
    at::Tensor xc = xn.narrow(0, c0, n), t = safe.narrow(0, c0, n), w = vf.narrow(0, c0, n);
    at::Tensor lp = at::log_softmax(at::mm(xc, head_.t()).to(at::kFloat), 1);  // [n, V]
    out.sum -= (lp.gather(1, t) * w).sum().item<double>();
    at::Tensor d = lp.exp_();  // softmax - onehot(target), rows without a target zeroed
    d.scatter_add_(1, t, -w).mul_(w);
    at::Tensor dd = d.to(x.scalar_type());
    at::Tensor dxc = dxn.narrow(0, c0, n);
    at::mm_out(dxc, dd, head_);
    if (full_) grad_of(head_).addmm_(dd.t(), xc);
  }
  dx = rms_backward(dxn, x, norm_, r, full_ ? &grad_of(norm_) : nullptr);
  return out;
}

int Backprop::row_slices(const Batch& b) const {
  const int64_t threads = at::get_num_threads();
  if (threads <= 1 || b.rows() < 2) return 1;
  // Dropout masks come from each module's generator in batch order: slices would draw others.
  for (size_t i = 0; i < lora_.size(); ++i)
    for (int k = 0; k < kProjs; ++k)
      if (dropping(i, k)) return 1;
  return static_cast<int>(std::min(threads, b.rows()));
}

LossSum Backprop::run(const Batch& b) {
  const int n = row_slices(b);
  if (n == 1) return run_rows(b);
  // Each thread runs whole sequences single-threaded, as if it were a rank of its own: on
  // CPU that beats splitting every op over the threads (skinny LoRA products and elementwise
  // passes scale poorly; measured 2 ranks x 1 thread 1.16-1.27x faster than 1 x 2).
  std::vector<GradSink> sinks(n);
  std::vector<LossSum> parts(n);
  TaskPool::run(n, [&](int64_t w) {
    const int64_t r0 = b.rows() * w / n, r1 = b.rows() * (w + 1) / n;
    Batch part;
    part.ids = b.ids.narrow(0, r0, r1 - r0);
    part.labels = b.labels.narrow(0, r0, r1 - r0);
    part.positions = b.positions.narrow(0, r0, r1 - r0);
    if (b.allowed.defined()) part.allowed = b.allowed.narrow(0, r0, r1 - r0);
    sinks[w].index = static_cast<int>(w);
    UseSink use(&sinks[w]);
    parts[w] = run_rows(part);
  });
  at::NoGradGuard no_grad;
  LossSum total;
  for (int w = 0; w < n; ++w) {  // in slice order: the bits do not depend on timing
    total.sum += parts[w].sum;
    total.count += parts[w].count;
    for (auto& [param, g] : sinks[w].grads) grad_of(param).add_(g);
  }
  return total;
}

LossSum Backprop::run_rows(const Batch& b) {
  at::NoGradGuard no_grad;
  const LlamaConfig& cfg = model_.config();
  Ctx c;
  c.B = b.ids.size(0);
  c.T = b.ids.size(1);
  c.N = c.B * c.T;
  auto [cos, sin] = rope_.tables(b.positions, model_.dtype());  // [B, 1, T, hd]
  c.cos = cos.reshape({c.N, 1, cfg.head_dim});
  c.sin = sin.reshape({c.N, 1, cfg.head_dim});
  if (b.allowed.defined()) c.masked = b.allowed.squeeze(1).logical_not();  // [B, T, T]
  c.q_scale = float(1.0 / std::sqrt(double(cfg.head_dim)));
  c.attn = AttnDims{c.B, c.T, cfg.heads, cfg.kv_heads, cfg.head_dim, attn_block_, /*q_scaled=*/true};
  c.keep_probs = c.B * cfg.heads * attention_probs_per_head(c.attn) * 4 <= kProbsBudget;

  const size_t L = model_.layers().size();
  std::vector<LayerState> st(L);
  at::Tensor x;
  {
    ProfSpan span(this, "embedding");
    x = model_.embed(b.ids).reshape({c.N, cfg.hidden});
  }
  for (size_t i = 0; i < L; ++i) {
    if (recompute_) {
      st[i].rng = save_rng(i);
      LayerState tmp;
      at::Tensor y = layer_forward(i, x, tmp, c, /*keep=*/false);
      st[i].x = x;
      x = y;
    } else {
      x = layer_forward(i, x, st[i], c, /*keep=*/true);
    }
  }
  at::Tensor dx;
  LossSum loss = head_loss(x, b.labels, c, dx);
  x = at::Tensor();
  for (size_t i = L; i-- > 0;) {
    if (recompute_) {
      // Rerun the layer from its input with the generators where the forward found them,
      // then leave them where the forward left them.
      std::vector<at::Tensor> after = save_rng(i);
      load_rng(i, st[i].rng);
      at::Tensor in = st[i].x;
      layer_forward(i, in, st[i], c, /*keep=*/true);
      load_rng(i, after);
    }
    dx = layer_backward(i, st[i], dx, c);
    st[i] = LayerState();
  }
  if (full_) {
    ProfSpan span(this, "embedding");
    grad_of(embed_).index_add_(0, b.ids.reshape({c.N}), dx);
  }
  return loss;
}

}  // namespace abm
