#include "train/layer_kernels.h"

#include <ATen/Parallel.h>

#include "core/check.h"

namespace abm {
namespace {

// RoPE in place on x [N, heads, hd] (rows of any stride, heads and hd contiguous), in one
// pass: y = x cos + R(x) sin with R(x) = [-x2, x1], i.e. y1 = x1 c - x2 s, y2 = x2 c + x1 s,
// each product rounded to the dtype before the sum — Rope::apply's ops, so the same bits
// (at scale 1).
// backward = the transpose: dx = dy cos + R^T(dy sin), R^T(z) = [z2, -z1].
// cos/sin [N, 1, hd] contiguous (the halves repeat, as Rope::tables builds them).
template <typename T, bool kBackward>
void rope_kernel(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, float scale) {
  const int64_t N = x.size(0), heads = x.size(1), hd = x.size(2), half = hd / 2;
  const int64_t rs = x.stride(0);
  ABM_CHECK(x.stride(2) == 1 && x.stride(1) == hd && cos.is_contiguous() && sin.is_contiguous(),
            "rope: unexpected layout");
  T* base = x.data_ptr<T>();
  const T* cb = cos.data_ptr<T>();
  const T* sb = sin.data_ptr<T>();
  const T sc = T(scale);
  at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* __restrict c = cb + n * hd;
      const T* __restrict s = sb + n * hd;
      for (int64_t h = 0; h < heads; ++h) {
        T* __restrict p1 = base + n * rs + h * hd;
        T* __restrict p2 = p1 + half;
        for (int64_t j = 0; j < half; ++j) {
          const T a = p1[j], b = p2[j];
          const T ac = a * c[j], bc = b * c[j + half];
          T y1, y2;
          if (!kBackward) {
            y1 = T(ac - T(b * s[j]));
            y2 = T(bc + T(a * s[j + half]));
          } else {
            y1 = T(ac + T(b * s[j + half]));
            y2 = T(bc - T(a * s[j]));
          }
          p1[j] = T(y1 * sc);
          p2[j] = T(y2 * sc);
        }
      }
    }
  });
}

}  // namespace

at::Tensor rms_forward(const at::Tensor& x, const at::Tensor& w, double eps, at::Tensor& r) {
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean(-1, /*keepdim=*/true);
  r = at::rsqrt(var + eps);
  return w * (h * r).to(x.scalar_type());
}

at::Tensor rms_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w,
                        const at::Tensor& r, at::Tensor* dw) {
  at::Tensor h = x.to(at::kFloat);
  if (dw) dw->add_((dy * (h * r).to(x.scalar_type())).sum(0));
  at::Tensor dn = (dy * w).to(at::kFloat);
  at::Tensor c = (dn * h).mean(-1, /*keepdim=*/true).mul_(r.pow(3));  // [N, 1]
  return dn.mul_(r).sub_(h * c).to(x.scalar_type());  // h may alias x (fp32)
}

void rope_forward_(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, float scale) {
  if (x.scalar_type() == at::kFloat) rope_kernel<float, false>(x, cos, sin, scale);
  else rope_kernel<at::BFloat16, false>(x, cos, sin, scale);
}
void rope_backward_(at::Tensor dy, const at::Tensor& cos, const at::Tensor& sin, float scale) {
  if (dy.scalar_type() == at::kFloat) rope_kernel<float, true>(dy, cos, sin, scale);
  else rope_kernel<at::BFloat16, true>(dy, cos, sin, scale);
}

}  // namespace abm
