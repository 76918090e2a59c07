#include "train/backprop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <malloc.h>

#include <cmath>

#include "core/check.h"
#include "core/timer.h"
#include "data/example.h"
#include "train/layer_kernels.h"
#include "train/task_pool.h"

namespace abm {

namespace {

// Where this thread's parameter gradients go while Backprop::run works on a row slice: one
// tensor per parameter, in the order first touched, added to .grad() after the slices.
struct GradSink {
  int index = 0;  // the slice's number
  std::vector<std::pair<at::Tensor, at::Tensor>> grads;  // (parameter, its gradient)
  at::Tensor& of(const at::Tensor& p) {
    for (auto& [param, g] : grads)
      if (param.is_same(p)) return g;
    grads.emplace_back(p, at::zeros_like(p));
    return grads.back().second;
  }
};
thread_local GradSink* t_sink = nullptr;

// Routes this thread's grad_of() to `sink` while alive.
struct UseSink {
  explicit UseSink(GradSink* sink) { t_sink = sink; }
  ~UseSink() { t_sink = nullptr; }
};

}  // namespace

// Adds the wall time of a scope to Backprop::profile()[name] when profiling is on (on row
// slices, slice 0's: they run side by side, so its wall time is the step's).
struct ProfSpan {
  ProfSpan(const Backprop* bp, const char* name) : bp_(const_cast<Backprop*>(bp)), name_(name) {}
  ~ProfSpan() {
    if (bp_->profiling_ && (!t_sink || t_sink->index == 0)) bp_->prof_[name_] += t_.seconds();
  }
  Backprop* bp_;
  const char* name_;
  Timer t_;
};

namespace {

const char* const kKinds[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// The parameter's gradient (this row slice's, when on one), zero-initialized on first use.
at::Tensor& grad_of(const at::Tensor& p) {
  if (t_sink) return t_sink->of(p);
  at::Tensor& g = const_cast<at::Tensor&>(p).mutable_grad();
  if (!g.defined()) g = at::zeros_like(p);
  return g;
}

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
      int kind = 0;
      while (kind < kProjs && m.kind != kKinds[kind]) ++kind;
      ABM_CHECK(kind < kProjs, "unknown module ", m.kind);
      lora_.at(m.layer - model.first())[kind] = m.lora.get();
    }
  }
  for (auto& l : model.layers())
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) {
      bool ours = false;
      for (auto& row : lora_)
        for (LoraLinear* a : row) ours |= a && p->adapter.get() == a;
      ABM_CHECK(!p->adapter || ours, "Backprop: a projection carries an adapter that is not "
                "part of the trained AdapterSet");
    }
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
  const DecoderLayer& l = model_.layers()[i];
  const Linear* p[] = {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down};
  return p[kind]->weight;
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

// y += s * hA B^T, as PEFT adds it: in fp32, rounded once to y's dtype.
void Backprop::lora_add(LoraLinear* a, const at::Tensor& hA, at::Tensor y) const {
  if (y.scalar_type() == at::kFloat) y.addmm_(hA, a->B().t(), 1.0, a->scale());
  else y.copy_(at::add(y, at::mm(hA, a->B().t()).mul_(a->scale())));
}

// y = x W^T, plus LoRA as PEFT computes it: s * B (A (dropout(x.to(fp32)))), added in fp32
// and rounded once to the base dtype. Masks come from each module's own generator, drawn
// exactly as LoraLinear::forward draws them.
void Backprop::group_forward(size_t i, Group g, const at::Tensor& x, at::Tensor y, LayerState& s) {
  {
    ProfSpan span(this, "frozen GEMMs");
    at::Tensor w = fused(i, g);
    if (w.defined()) {
      at::mm_out(y, x, w.t());
    } else {
      for (int k = g.first; k < g.first + g.count; ++k) {
        at::Tensor yk = y.narrow(1, column(i, g, k), weight(i, k).size(0));
        at::mm_out(yk, x, weight(i, k).t());
      }
    }
  }
  ProfSpan span(this, "LoRA");
  at::Tensor xf;  // the input in fp32, made on first use
  std::vector<int> shared;  // modules without dropout: one GEMM for all their A x
  for (int k = g.first; k < g.first + g.count; ++k) {
    LoraLinear* a = active(i, k);
    if (!a) continue;
    if (!xf.defined()) xf = x.to(at::kFloat);
    if (!dropping(i, k)) {
      shared.push_back(k);
      continue;
    }
    const double p = a->dropout();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>();
    gen.set_state(a->dropout_state());
    s.p[k].keep = at::empty_like(xf).bernoulli_(1.0 - p, gen).div_(1.0 - p);
    a->set_dropout_state(gen.get_state());
    s.p[k].hA = at::mm(xf * s.p[k].keep, a->A().t());  // [N, r]
    lora_add(a, s.p[k].hA, y.narrow(1, column(i, g, k), weight(i, k).size(0)));
  }
  if (shared.empty()) return;
  std::vector<at::Tensor> As;
  for (int k : shared) As.push_back(lora_[i][k]->A());
  at::Tensor hA = at::mm(xf, (As.size() == 1 ? As[0] : at::cat(As, 0)).t());  // [N, sum r]
  int64_t off = 0;
  for (int k : shared) {
    LoraLinear* a = lora_[i][k];
    s.p[k].hA = hA.narrow(1, off, a->r());
    off += a->r();
    lora_add(a, s.p[k].hA, y.narrow(1, column(i, g, k), weight(i, k).size(0)));
  }
}

// dx = dy W, and the LoRA gradients: dB += s dy^T hA, dA += (s dy B)^T xd,
// dx += ((s dy B) A) * keep. Full mode: dW += dy^T x.
void Backprop::group_backward(size_t i, Group g, const at::Tensor& dy, const at::Tensor& x,
                              const LayerState& s, at::Tensor dx) {
  auto dy_of = [&](int k) { return dy.narrow(1, column(i, g, k), weight(i, k).size(0)); };
  {
    ProfSpan span(this, "frozen GEMMs");
    at::Tensor w = fused(i, g);
    if (w.defined()) {
      at::mm_out(dx, dy, w);
    } else {
      for (int k = g.first; k < g.first + g.count; ++k) {
        if (k == g.first) at::mm_out(dx, dy_of(k), weight(i, k));
        else dx.addmm_(dy_of(k), weight(i, k));
      }
    }
  }
  if (full_) {
    ProfSpan span(this, "weight gradients (full)");
    for (int k = g.first; k < g.first + g.count; ++k) grad_of(weight(i, k)).addmm_(dy_of(k).t(), x);
  }
  ProfSpan span(this, "LoRA");
  at::Tensor xf;
  std::vector<int> shared;
  int64_t shared_r = 0;
  for (int k = g.first; k < g.first + g.count; ++k) {
    LoraLinear* a = active(i, k);
    if (!a) continue;
    if (!xf.defined()) xf = x.to(at::kFloat);
    at::Tensor dyf = dy_of(k).to(at::kFloat);
    grad_of(a->B()).addmm_(dyf.t(), s.p[k].hA, 1.0, a->scale());
    if (!dropping(i, k)) {
      shared.push_back(k);
      shared_r += a->r();
      continue;
    }
    at::Tensor gk = at::mm(dyf, a->B()).mul_(a->scale());  // [N, r]
    grad_of(a->A()).addmm_(gk.t(), xf * s.p[k].keep);
    at::Tensor gx = at::mm(gk, a->A()).mul_(s.p[k].keep);  // [N, in] fp32
    dx.add_(gx.to(dx.scalar_type()));
  }
  if (shared.empty()) return;
  at::Tensor G = at::empty({dy.size(0), shared_r}, dy.options().dtype(at::kFloat));  // [N, sum r]
  std::vector<at::Tensor> As;
  int64_t off = 0;
  for (int k : shared) {
    LoraLinear* a = lora_[i][k];
    at::Tensor gk = G.narrow(1, off, a->r());
    at::mm_out(gk, dy_of(k).to(at::kFloat), a->B());
    gk.mul_(a->scale());
    As.push_back(a->A());
    off += a->r();
  }
  at::Tensor A = As.size() == 1 ? As[0] : at::cat(As, 0);  // [sum r, in]
  at::Tensor dA = at::mm(G.t(), xf);                         // [sum r, in]
  off = 0;
  for (int k : shared) {
    LoraLinear* a = lora_[i][k];
    grad_of(a->A()).add_(dA.narrow(0, off, a->r()));
    off += a->r();
  }
  if (dx.scalar_type() == at::kFloat) dx.addmm_(G, A);
  else dx.add_(at::mm(G, A).to(dx.scalar_type()));
}

at::Tensor Backprop::layer_forward(size_t i, const at::Tensor& x, LayerState& s, const Ctx& c,
                                   bool keep) {
  const LlamaConfig& cfg = model_.config();
  const DecoderLayer& l = model_.layers()[i];
  const int64_t N = c.N, H = cfg.hidden, qd = cfg.q_dim(), kvd = cfg.kv_dim(), I = cfg.intermediate;
  const auto opts = x.options();
  s.x = x;
  {
    ProfSpan span(this, "RMSNorm");
    s.xn1 = rms_forward(x, l.input_norm, cfg.rms_eps, s.r1);
  }
  s.qkv = at::empty({N, qd + 2 * kvd}, opts);
  group_forward(i, kAttnIn, s.xn1, s.qkv, s);
  at::Tensor q = s.qkv.narrow(1, 0, qd), k = s.qkv.narrow(1, qd, kvd), v = s.qkv.narrow(1, qd + kvd, kvd);
  {
    ProfSpan span(this, "RoPE");
    rope_forward_(q.view({N, cfg.heads, cfg.head_dim}), c.cos, c.sin, c.q_scale);
    rope_forward_(k.view({N, cfg.kv_heads, cfg.head_dim}), c.cos, c.sin, 1.0f);
  }
  s.att = at::empty({N, qd}, opts);
  {
    ProfSpan span(this, "attention");
    if (keep && c.keep_probs)
      s.probs = at::empty({c.B * cfg.heads, attention_probs_per_head(c.attn)}, opts.dtype(at::kFloat));
    attention_forward(c.attn, q, k, v, c.masked, s.att, s.probs);
  }
  at::Tensor o = at::empty({N, H}, opts);
  group_forward(i, kAttnOut, s.att, o, s);
  {
    ProfSpan span(this, "residual adds");
    s.h = o.add_(x);
  }
  {
    ProfSpan span(this, "RMSNorm");
    s.xn2 = rms_forward(s.h, l.post_norm, cfg.rms_eps, s.r2);
  }
  s.gu = at::empty({N, 2 * I}, opts);
  group_forward(i, kMlpIn, s.xn2, s.gu, s);
  at::Tensor act;  // [N, I]
  {
    ProfSpan span(this, "SwiGLU");
    act = at::silu(s.gu.narrow(1, 0, I)).mul_(s.gu.narrow(1, I, I));
  }
  at::Tensor y = at::empty({N, H}, opts);
  group_forward(i, kMlpOut, act, y, s);
  ProfSpan span(this, "residual adds");
  return y.add_(s.h);
}

at::Tensor Backprop::layer_backward(size_t i, LayerState& s, const at::Tensor& dy, const Ctx& c) {
  const LlamaConfig& cfg = model_.config();
  const DecoderLayer& l = model_.layers()[i];
  const int64_t N = c.N, H = cfg.hidden, qd = cfg.q_dim(), kvd = cfg.kv_dim(), I = cfg.intermediate;
  const auto opts = dy.options();
  // MLP: y = h + down(silu(g) * u)
  at::Tensor g = s.gu.narrow(1, 0, I), u = s.gu.narrow(1, I, I);
  at::Tensor sg, act;
  {
    ProfSpan span(this, "SwiGLU");
    sg = at::silu(g);
    if (full_ || active(i, kDown)) act = sg * u;
  }
  at::Tensor da = at::empty({N, I}, opts);
  group_backward(i, kMlpOut, dy, act, s, da);
  act = at::Tensor();
  at::Tensor dgu = at::empty({N, 2 * I}, opts);
  {
    ProfSpan span(this, "SwiGLU");
    at::Tensor dg = dgu.narrow(1, 0, I), du = dgu.narrow(1, I, I);
    at::mul_out(du, da, sg);
    at::silu_backward_out(dg, da.mul_(u), g);
  }
  sg = da = at::Tensor();
  at::Tensor dxn2 = at::empty({N, H}, opts);
  group_backward(i, kMlpIn, dgu, s.xn2, s, dxn2);
  dgu = at::Tensor();
  s.gu = at::Tensor();
  at::Tensor dh;
  {
    ProfSpan span(this, "RMSNorm");
    dh = rms_backward(dxn2, s.h, l.post_norm, s.r2, full_ ? &grad_of(l.post_norm) : nullptr).add_(dy);
  }
  dxn2 = at::Tensor();
  // attention: h = x + o(attn(rope(q(xn1)) / sqrt(hd), rope(k(xn1)), v(xn1)))
  at::Tensor datt = at::empty({N, qd}, opts);
  group_backward(i, kAttnOut, dh, s.att, s, datt);
  at::Tensor dqkv = at::empty({N, qd + 2 * kvd}, opts);
  at::Tensor dq = dqkv.narrow(1, 0, qd), dk = dqkv.narrow(1, qd, kvd), dv = dqkv.narrow(1, qd + kvd, kvd);
  {
    ProfSpan span(this, "attention");
    attention_backward(c.attn, s.qkv.narrow(1, 0, qd), s.qkv.narrow(1, qd, kvd),
                       s.qkv.narrow(1, qd + kvd, kvd), c.masked, datt, dq, dk, dv, s.probs);
  }
  datt = at::Tensor();
  s.probs = at::Tensor();
  {
    ProfSpan span(this, "RoPE");
    rope_backward_(dq.view({N, cfg.heads, cfg.head_dim}), c.cos, c.sin, c.q_scale);
    rope_backward_(dk.view({N, cfg.kv_heads, cfg.head_dim}), c.cos, c.sin, 1.0f);
  }
  at::Tensor dxn1 = at::empty({N, H}, opts);
  group_backward(i, kAttnIn, dqkv, s.xn1, s, dxn1);
  ProfSpan span(this, "RMSNorm");
  return rms_backward(dxn1, s.x, l.input_norm, s.r1, full_ ? &grad_of(l.input_norm) : nullptr).add_(dh);
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
