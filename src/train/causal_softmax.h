// Row softmax of one causal score tile, forward and backward, in one pass over the tile each.
//
// Why not ATen's masked_fill_ + softmax: on a [128, 256] fp32 tile those two dispatches cost
// about as much as the tile's GEMM (~40 + 55 us against ~90 us), and attention runs them
// B x heads x T/block times per layer. Here the causal mask is the loop bound, exp is a
// branch-free polynomial the compiler vectorizes, and reductions keep 16 lanes so they
// vectorize without reassociating floats (-ffast-math is not used).
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

// The clamp in exp_nonpositive vectorizes only when comparisons may be assumed not to trap
// (nothing here reads floating-point exception flags). Code under this pragma calls no
// std:: helpers: GCC will not inline functions compiled with other options into it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

namespace abm {
namespace softmax_detail {

// Inlined into each clone below, so each is compiled for that clone's instruction set.
#define ABM_INLINE inline __attribute__((always_inline))

constexpr int kLanes = 16;

// e^x for x <= 0 (scores minus the row maximum), to ~1 ulp: x = n ln2 + r with |r| <= ln2/2,
// e^r by its degree-6 Taylor polynomial (error < 1.3e-7 relative), 2^n put into the exponent
// bits. Below -87.3 (e^x < 1.2e-38, a probability nothing can tell from 0) it returns e^-87.3.
ABM_INLINE float exp_nonpositive(float x) {
  x = x > -87.3f ? x : -87.3f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, no branch
  float t = x * 1.44269504f + shifter;
  float n = t - shifter;
  float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;  // ln2 in two parts, exact n*hi
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
  int32_t ti, shi;
  std::memcpy(&ti, &t, 4);
  std::memcpy(&shi, &shifter, 4);
  int32_t bits = (ti - shi + 127) << 23;  // 2^n, n in [-126, 0]
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

ABM_INLINE float lane_max(const float* v) {
  float m = v[0];
  for (int l = 1; l < kLanes; ++l) m = v[l] > m ? v[l] : m;
  return m;
}

ABM_INLINE float lane_sum(const float* v) {
  float s = 0;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

// softmax of x[0, n) in place (n >= 1), zeros in x[n, e).
ABM_INLINE void softmax_row(float* __restrict x, int64_t n, int64_t e) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
  float m = lane_max(acc);
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  for (j = 0; j < n; ++j) x[j] = exp_nonpositive(x[j] - m);
  for (int l = 0; l < kLanes; ++l) acc[l] = 0;
  for (j = 0; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[j + l];
  float sum = lane_sum(acc);
  for (; j < n; ++j) sum += x[j];
  const float inv = 1.0f / sum;
  for (j = 0; j < n; ++j) x[j] *= inv;
  for (j = n; j < e; ++j) x[j] = 0;
}

// ds = p * (dp - <p, dp>) in place of dp.
ABM_INLINE void softmax_backward_row(const float* __restrict p, float* __restrict dp, int64_t e) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= e; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += p[j + l] * dp[j + l];
  float dot = lane_sum(acc);
  for (; j < e; ++j) dot += p[j] * dp[j];
  for (j = 0; j < e; ++j) dp[j] = p[j] * (dp[j] - dot);
}

}  // namespace softmax_detail

// Clones for AVX-512 and AVX2 next to the baseline build, picked at load time by the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ABM_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ABM_SIMD_CLONES
#endif

// s [tb, e] fp32 contiguous: the scores of queries r0 .. r0+tb-1 over keys 0 .. e-1. Row i
// becomes the softmax over keys 0 .. r0+i (the causal ones), zeros after.
ABM_SIMD_CLONES inline void causal_softmax_(float* s, int64_t tb, int64_t e, int64_t r0) {
  for (int64_t i = 0; i < tb; ++i) softmax_detail::softmax_row(s + i * e, r0 + i + 1 < e ? r0 + i + 1 : e, e);
}

// p, dp [tb, e] fp32 contiguous: dp becomes d(loss)/d(scores) given d(loss)/d(p).
ABM_SIMD_CLONES inline void softmax_backward_(const float* p, float* dp, int64_t tb, int64_t e) {
  for (int64_t i = 0; i < tb; ++i) softmax_detail::softmax_backward_row(p + i * e, dp + i * e, e);
}

}  // namespace abm

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
