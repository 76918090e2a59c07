// Backprop's per-layer math (backprop.h): the projection groups with their LoRA terms, and
// one decoder layer's forward and backward.
#include "train/backprop.h"
#include "train/backprop_internal.h"
#include "train/layer_kernels.h"

namespace abm {

using backprop_detail::grad_of;

// y += s * hA B^T, as PEFT adds it: in fp32, rounded once to y's dtype (fp32 compute), or
// in bf16 as under torch.autocast (bf16 compute: hA is bf16; lora_linear.h).
void Backprop::lora_add(LoraLinear* a, const at::Tensor& hA, at::Tensor y) const {
  if (y.scalar_type() == at::kFloat) y.addmm_(hA, a->B().t(), 1.0, a->scale());
  else y.add_(at::mm(hA, a->B().to(hA.scalar_type()).t()).mul_(a->scale()));
}

// y = x W^T, plus LoRA as PEFT computes it: s * B (A (dropout(x.to(fp32)))), added in fp32
// and rounded once to the base dtype; in bf16 compute the products run in bf16 (as under
// torch.autocast; lora_linear.h). Masks come from each module's own generator, drawn
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
  const at::ScalarType lt = lora_dtype(x);
  at::Tensor xl;  // the input in the LoRA dtype, made on first use
  std::vector<int> shared;  // modules without dropout: one GEMM for all their A x
  for (int k = g.first; k < g.first + g.count; ++k) {
    LoraLinear* a = active(i, k);
    if (!a) continue;
    if (!xl.defined()) xl = x.to(lt);
    if (!dropping(i, k)) {
      shared.push_back(k);
      continue;
    }
    const double p = a->dropout();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>();
    gen.set_state(a->dropout_state());
    at::Tensor xf = x.to(at::kFloat);
    s.p[k].keep = at::empty_like(xf).bernoulli_(1.0 - p, gen).div_(1.0 - p);
    a->set_dropout_state(gen.get_state());
    s.p[k].hA = at::mm((xf * s.p[k].keep).to(lt), a->A().to(lt).t());  // [N, r]
    lora_add(a, s.p[k].hA, y.narrow(1, column(i, g, k), weight(i, k).size(0)));
  }
  if (shared.empty()) return;
  std::vector<at::Tensor> As;
  for (int k : shared) As.push_back(lora_[i][k]->A());
  at::Tensor hA = at::mm(xl, (As.size() == 1 ? As[0] : at::cat(As, 0)).to(lt).t());  // [N, sum r]
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
  // fp32: the gradients in fp32 from fp32 copies; bf16: the products in bf16 (as autograd
  // runs them under autocast), each gradient converted to fp32 once.
  const at::ScalarType lt = lora_dtype(x);
  at::Tensor xl;
  std::vector<int> shared;
  int64_t shared_r = 0;
  for (int k = g.first; k < g.first + g.count; ++k) {
    LoraLinear* a = active(i, k);
    if (!a) continue;
    if (!xl.defined()) xl = x.to(lt);
    at::Tensor dyl = dy_of(k).to(lt);
    if (lt == at::kFloat) grad_of(a->B()).addmm_(dyl.t(), s.p[k].hA, 1.0, a->scale());
    else grad_of(a->B()).add_(at::mm(dyl.t(), s.p[k].hA).to(at::kFloat), a->scale());
    if (!dropping(i, k)) {
      shared.push_back(k);
      shared_r += a->r();
      continue;
    }
    at::Tensor gk = at::mm(dyl, a->B().to(lt)).mul_(a->scale());  // [N, r]
    at::Tensor xd = (x.to(at::kFloat) * s.p[k].keep).to(lt);
    if (lt == at::kFloat) grad_of(a->A()).addmm_(gk.t(), xd);
    else grad_of(a->A()).add_(at::mm(gk.t(), xd).to(at::kFloat));
    at::Tensor gx = at::mm(gk, a->A().to(lt)).to(at::kFloat).mul_(s.p[k].keep);  // [N, in] fp32
    dx.add_(gx.to(dx.scalar_type()));
  }
  if (shared.empty()) return;
  at::Tensor G = at::empty({dy.size(0), shared_r}, dy.options().dtype(lt));  // [N, sum r]
  std::vector<at::Tensor> As;
  int64_t off = 0;
  for (int k : shared) {
    LoraLinear* a = lora_[i][k];
    at::Tensor gk = G.narrow(1, off, a->r());
    at::mm_out(gk, dy_of(k).to(lt), a->B().to(lt));
    gk.mul_(a->scale());
    As.push_back(a->A());
    off += a->r();
  }
  at::Tensor A = (As.size() == 1 ? As[0] : at::cat(As, 0)).to(lt);  // [sum r, in]
  at::Tensor dA = at::mm(G.t(), xl);                                // [sum r, in]
  off = 0;
  for (int k : shared) {
    LoraLinear* a = lora_[i][k];
    grad_of(a->A()).add_(dA.narrow(0, off, a->r()).to(at::kFloat));
    off += a->r();
  }
  if (dx.scalar_type() == at::kFloat && lt == at::kFloat) dx.addmm_(G, A);
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

}  // namespace abm
