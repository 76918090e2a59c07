#include "train/attention.h"

#include <cmath>
#include <limits>

#include "core/check.h"
#include "train/causal_softmax.h"
#include "train/task_pool.h"

namespace abm {
namespace {

// Rows [b*T, (b+1)*T) and columns of one head of an [N, ...] buffer.
at::Tensor head_view(const at::Tensor& t, int64_t b, int64_t T, int64_t head, int64_t hd) {
  return t.narrow(0, b * T, T).narrow(1, head * hd, hd);  // [T, hd], row stride kept
}

// One score tile's probabilities: query rows [r0, r0 + tb) over keys [0, r0 + tb) -> [tb, e]
// fp32, written into `out` when defined (kept for the backward), else freshly allocated.
// Forward and backward recomputation go through this one function, so they agree bitwise.
struct Tiler {
  const AttnDims& d;
  const at::Tensor& masked;  // [1 or B, T, T] bool, or undefined: causal
  double div;

  Tiler(const AttnDims& dims, const at::Tensor& m) : d(dims), masked(m), div(std::sqrt(double(dims.head_dim))) {}
  at::Tensor probs(const at::Tensor& q, const at::Tensor& k, int64_t b, int64_t r0, int64_t tb,
                   at::Tensor out) const {
    const int64_t e = r0 + tb;
    at::Tensor qt = q.narrow(0, r0, tb), kt = k.narrow(0, 0, e).t();
    // Causal fp32 tiles are scored straight into the kept buffer (the softmax is in place);
    // masked ones keep the scores apart, since ATen's softmax writes `out` from them.
    const bool in_place = out.defined() && q.scalar_type() == at::kFloat && !masked.defined();
    at::Tensor s = in_place ? at::mm_out(out, qt, kt) : at::mm(qt, kt);  // [tb, e] compute dtype
    if (!d.q_scaled) s.div_(div);
    s = s.to(at::kFloat);
    if (!masked.defined()) {  // causal: each row's mask is its length
      if (out.defined() && !in_place) s = out.copy_(s);
      causal_softmax_(s.data_ptr<float>(), tb, e, r0);
      return s;
    }
    at::Tensor mb = masked.size(0) == 1 ? masked[0] : masked[b];
    s.masked_fill_(mb.narrow(0, r0, tb).narrow(1, 0, e), -std::numeric_limits<float>::infinity());
    if (!out.defined()) return at::softmax(s, -1);
    at::_softmax_out(out, s, -1, false);
    return out;
  }
  // The kept tile of head row bh (or undefined): tiles are stored one after another.
  at::Tensor kept(const at::Tensor& probs, int64_t bh, int64_t r0, int64_t tb) const {
    if (!probs.defined()) return {};
    int64_t off = 0;
    for (int64_t r = 0; r < r0; r += d.block) off += std::min(d.block, d.T - r) * (r + std::min(d.block, d.T - r));
    return probs[bh].narrow(0, off, tb * (r0 + tb)).view({tb, r0 + tb});
  }
};

}  // namespace

int64_t attention_probs_per_head(const AttnDims& d) {
  int64_t n = 0;
  for (int64_t r = 0; r < d.T; r += d.block) {
    const int64_t tb = std::min(d.block, d.T - r);
    n += tb * (r + tb);
  }
  return n;
}

void attention_forward(const AttnDims& dims, const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& masked, at::Tensor out,
                       at::Tensor probs) {
  AttnDims d = dims;
  d.block = std::max<int64_t>(1, std::min(d.block, d.T));
  const int64_t B = d.B, T = d.T, hd = d.head_dim, nkv = d.kv_heads, rep = d.heads / d.kv_heads;
  ABM_CHECK(q.size(0) == B * T && out.size(0) == B * T, "attention: rows ", q.size(0), " vs B*T ", B * T);
  ABM_CHECK(q.device().is_cpu(), "attention: CPU tensors only (its softmax kernel reads host memory)");
  ABM_CHECK(!probs.defined() || (probs.size(0) == B * d.heads &&
                                 probs.size(1) == attention_probs_per_head(d)),
            "attention: probs buffer ", probs.sizes());
  const Tiler tiler(d, masked);
  TaskPool::run(B * nkv, [&](int64_t task) {
    const int64_t b = task / nkv, g = task % nkv;
    at::Tensor kb = head_view(k, b, T, g, hd), vb = head_view(v, b, T, g, hd);
    for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
      at::Tensor qb = head_view(q, b, T, h, hd), ob = head_view(out, b, T, h, hd);
      for (int64_t r0 = 0; r0 < T; r0 += d.block) {
        const int64_t tb = std::min(d.block, T - r0);
        at::Tensor p = tiler.probs(qb, kb, b, r0, tb, tiler.kept(probs, b * d.heads + h, r0, tb));
        at::Tensor o = ob.narrow(0, r0, tb);
        at::mm_out(o, p.to(q.scalar_type()), vb.narrow(0, 0, r0 + tb));
      }
    }
  });
}

void attention_backward(const AttnDims& dims, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& masked, const at::Tensor& dout,
                        at::Tensor dq, at::Tensor dk, at::Tensor dv, const at::Tensor& probs) {
  AttnDims d = dims;
  d.block = std::max<int64_t>(1, std::min(d.block, d.T));
  const int64_t B = d.B, T = d.T, hd = d.head_dim, nkv = d.kv_heads, rep = d.heads / d.kv_heads;
  const at::ScalarType dt = q.scalar_type();
  const Tiler tiler(d, masked);
  TaskPool::run(B * nkv, [&](int64_t task) {
    const int64_t b = task / nkv, g = task % nkv;
    at::Tensor kb = head_view(k, b, T, g, hd), vb = head_view(v, b, T, g, hd);
    at::Tensor dkb = head_view(dk, b, T, g, hd), dvb = head_view(dv, b, T, g, hd);
    dkb.zero_();
    dvb.zero_();
    for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
      at::Tensor qb = head_view(q, b, T, h, hd), dob = head_view(dout, b, T, h, hd);
      at::Tensor dqb = head_view(dq, b, T, h, hd);
      for (int64_t r0 = 0; r0 < T; r0 += d.block) {
        const int64_t tb = std::min(d.block, T - r0), e = r0 + tb;
        at::Tensor p = tiler.kept(probs, b * d.heads + h, r0, tb);  // [tb, e] fp32
        if (!p.defined()) p = tiler.probs(qb, kb, b, r0, tb, {});
        at::Tensor dob_t = dob.narrow(0, r0, tb);                   // [tb, hd]
        at::Tensor dvb_e = dvb.narrow(0, 0, e);
        dvb_e.addmm_(p.to(dt).t(), dob_t);                          // dV += P^T dO
        at::Tensor dp = at::mm(dob_t, vb.narrow(0, 0, e).t()).to(at::kFloat);  // [tb, e]
        // softmax backward in fp32; masked entries have p = 0, so their gradient is 0
        softmax_backward_(p.data_ptr<float>(), dp.data_ptr<float>(), tb, e);
        at::Tensor ds = dp.to(dt);
        if (!d.q_scaled) ds.div_(tiler.div);
        at::Tensor dqt = dqb.narrow(0, r0, tb);
        at::mm_out(dqt, ds, kb.narrow(0, 0, e));                    // dQ = dS K
        at::Tensor dkb_e = dkb.narrow(0, 0, e);
        dkb_e.addmm_(ds.t(), qb.narrow(0, r0, tb));                  // dK += dS^T Q
      }
    }
  });
}

}  // namespace abm
