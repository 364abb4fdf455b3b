// The stochastic pooling kernels (stoch_impl.h) compiled for the avx2 tier, with an 8-lane
// intrinsics block (two per block of 16): the taps' sums, the draws (SplitMix64 on 4 + 4 64-bit
// lanes, the 64-bit products from 32-bit ones) and the running-sum search in registers, each
// lane the scalar lane's operations in the same order.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/stoch/stoch.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/stoch/stoch_impl.h"

// All-ones in the first `count` (0..8) 32-bit lanes.
inline __m256i stoch_lanes8(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// p[0], p[2], ..., p[2 * (count - 1)]: two masked loads reading only p[0 .. 2 * count - 2], the
// even lanes moved together by permutes.
inline __m256 stoch_load_even8(const float* p, int count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * count - 1), index);
  const __m256i hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * count - 9), index);
  const __m256 a = _mm256_maskload_ps(p, lo), b = _mm256_maskload_ps(p + 8, hi);
  const __m256 even_a = _mm256_permutevar8x32_ps(a, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
  const __m256 even_b = _mm256_permutevar8x32_ps(b, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
  return _mm256_blend_ps(even_a, even_b, 0xf0);
}

// kStep: the lanes' input step when it is 1 or 2 (plain loads), else 0 (a gather at `index`).
template <int kStep>
inline __m256 stoch_load8(const float* p, __m256i m, int count, __m256i index) {
  if (kStep == 1) return _mm256_maskload_ps(p, m);
  if (kStep == 2) return stoch_load_even8(p, count);
  return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, index, _mm256_castsi256_ps(m), 4);
}

// a * b mod 2^64 per 64-bit lane, b_hi = b >> 32: three 32x32 -> 64 products.
inline __m256i stoch_mullo64(__m256i a, __m256i b, __m256i b_hi) {
  const __m256i cross =
      _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b), _mm256_mul_epu32(a, b_hi));
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

inline __m256i stoch_mix4(__m256i z) {
  const uint64_t c1 = 0xbf58476d1ce4e5b9ull, c2 = 0x94d049bb133111ebull;
  z = _mm256_add_epi64(z, _mm256_set1_epi64x(int64_t(0x9e3779b97f4a7c15ull)));
  z = stoch_mullo64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), _mm256_set1_epi64x(int64_t(c1)),
                    _mm256_set1_epi64x(int64_t(c1 >> 32)));
  z = stoch_mullo64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), _mm256_set1_epi64x(int64_t(c2)),
                    _mm256_set1_epi64x(int64_t(c2 >> 32)));
  return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

// stoch_uniform for the 8 positions o0 + l * o_step.
inline __m256 stoch_uniform8(uint64_t key, uint64_t o0, uint64_t o_step) {
  const __m256i k = _mm256_set1_epi64x(int64_t(key));
  const __m256i lo = _mm256_setr_epi64x(int64_t(o0), int64_t(o0 + o_step), int64_t(o0 + 2 * o_step),
                                        int64_t(o0 + 3 * o_step));
  const __m256i hi = _mm256_add_epi64(lo, _mm256_set1_epi64x(int64_t(4 * o_step)));
  const __m256i top_lo = _mm256_srli_epi64(stoch_mix4(_mm256_xor_si256(k, lo)), 40);
  const __m256i top_hi = _mm256_srli_epi64(stoch_mix4(_mm256_xor_si256(k, hi)), 40);
  // The low 32 bits of each 64-bit lane, in order: lo0 lo1 hi0 hi1 | lo2 lo3 hi2 hi3, then
  // the 64-bit pairs reordered.
  const __m256 packed = _mm256_shuffle_ps(_mm256_castsi256_ps(top_lo), _mm256_castsi256_ps(top_hi),
                                          _MM_SHUFFLE(2, 0, 2, 0));
  const __m256i top =
      _mm256_permute4x64_epi64(_mm256_castps_si256(packed), _MM_SHUFFLE(3, 1, 2, 0));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(top), _mm256_set1_ps(0x1p-24f));
}

// Windows of at most this many taps keep them (after the first pass) in a local array.
constexpr int kStochCached8 = 16;

// The block contract of stoch_block_scalar for `count` <= 8 lanes.
template <int kStep, bool kTraining>
uint32_t stoch_half(const StochGeometry& g, int count, const float* const* src, int ntaps,
                    int64_t offset, int64_t step, uint64_t o0, uint64_t o_step, float* y,
                    int32_t* chosen) {
  const __m256i m = stoch_lanes8(count);
  const __m256i index = kStep ? _mm256_setzero_si256()
                              : _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                   _mm256_set1_epi32(int32_t(step)));
  auto load = [&](int t) { return stoch_load8<kStep>(src[t] + offset, m, count, index); };
  const __m256 zero = _mm256_setzero_ps();
  __m256 s = zero, q = zero;
  __m256i bits = _mm256_setzero_si256();
  auto add = [&](int t, __m256 v) {  // the scalar lane's sums, from the first tap
    bits = t ? _mm256_max_epu32(bits, _mm256_castps_si256(v)) : _mm256_castps_si256(v);
    s = t ? _mm256_add_ps(s, v) : v;
    if (!kTraining) q = t ? _mm256_add_ps(q, _mm256_mul_ps(v, v)) : _mm256_mul_ps(v, v);
  };
  const bool cached = ntaps <= kStochCached8;
  __m256 taps[kStochCached8];
  if (cached) {
    for (int t = 0; t < ntaps; ++t) add(t, taps[t] = load(t));
  } else {
    for (int t = 0; t < ntaps; ++t) add(t, load(t));
  }
  const __m256 active = _mm256_castsi256_ps(m);
  const __m256 positive = _mm256_and_ps(active, _mm256_cmp_ps(s, zero, _CMP_GT_OQ));
  __m256 slow;
  if (!kTraining) {
    // q - q is 0 exactly when q is finite.
    const __m256 finite = _mm256_cmp_ps(_mm256_sub_ps(q, q), zero, _CMP_EQ_OQ);
    slow = _mm256_andnot_ps(finite, positive);
    _mm256_maskstore_ps(y, m, _mm256_and_ps(_mm256_and_ps(positive, finite), _mm256_div_ps(q, s)));
    _mm256_maskstore_epi32(chosen, m, _mm256_setzero_si256());
  } else {
    const __m256 finite = _mm256_cmp_ps(_mm256_sub_ps(s, s), zero, _CMP_EQ_OQ);
    slow = _mm256_andnot_ps(finite, positive);
    const __m256 need = _mm256_and_ps(positive, finite);
    const __m256 target = _mm256_mul_ps(stoch_uniform8(g.key, o0, o_step), s);
    __m256 c = zero, value = zero, found = zero;
    __m256i pick = _mm256_setzero_si256();
    auto step_tap = [&](int t, __m256 v) {
      c = t ? _mm256_add_ps(c, v) : v;
      const __m256 take =
          _mm256_andnot_ps(found, _mm256_and_ps(need, _mm256_cmp_ps(c, target, _CMP_GT_OQ)));
      value = _mm256_blendv_ps(value, v, take);
      pick = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(pick),
                                                  _mm256_castsi256_ps(_mm256_set1_epi32(t)), take));
      found = _mm256_or_ps(found, take);
    };
    if (cached) {
      for (int t = 0; t < ntaps; ++t) step_tap(t, taps[t]);
    } else {
      const int all = _mm256_movemask_ps(need);
      for (int t = 0; t < ntaps && _mm256_movemask_ps(found) != all; ++t) step_tap(t, load(t));
    }
    _mm256_maskstore_ps(y, m, value);
    _mm256_maskstore_epi32(chosen, m, pick);
  }
  for (unsigned rest = unsigned(_mm256_movemask_ps(slow)); rest; rest &= rest - 1) {  // rare
    const int l = __builtin_ctz(rest);
    stoch_lane(g, src, ntaps, offset + l * step, o0 + uint64_t(l) * o_step, y + l, chosen + l);
  }
  // A lane above +inf's pattern (a sign bit or a NaN): max(bits, +inf) differs from +inf.
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  const __m256i over = _mm256_cmpeq_epi32(_mm256_max_epu32(bits, inf), inf);
  return _mm256_movemask_epi8(over) == -1 ? 0u : 0xffffffffu;
}

// The block contract of stoch_block_scalar: two 8-lane halves.
template <int kStep, bool kTraining>
uint32_t stoch_block8x2(const StochGeometry& g, int count, const float* const* src, int ntaps,
                        int64_t offset, int64_t step, uint64_t o0, uint64_t o_step, float* y,
                        int32_t* chosen) {
  uint32_t bits = stoch_half<kStep, kTraining>(g, std::min(count, 8), src, ntaps, offset, step, o0,
                                               o_step, y, chosen);
  if (count > 8) {
    bits = std::max(bits,
                    stoch_half<kStep, kTraining>(g, count - 8, src, ntaps, offset + 8 * step, step,
                                                 o0 + 8 * o_step, o_step, y + 8, chosen + 8));
  }
  return bits;
}

template <int kStep>
uint32_t stoch_plane_step(const StochGeometry& g, int64_t plane, const float* x, float* y,
                          int64_t* idx) {
  if (g.training) {
    return stoch_plane_impl(g, plane, x, y, idx,
                            [&g](auto... args) { return stoch_block8x2<kStep, true>(g, args...); });
  }
  return stoch_plane_impl(g, plane, x, y, idx,
                          [&g](auto... args) { return stoch_block8x2<kStep, false>(g, args...); });
}

}  // namespace

uint32_t stoch_plane_avx2(const StochGeometry& g, int64_t plane, const float* x, float* y,
                          int64_t* idx) {
  // A gather's lane offsets are int32: wider steps take the scalar block.
  if (g.sw > (int64_t(1) << 26)) {
    return stoch_plane_impl(g, plane, x, y, idx,
                            [&g](auto... args) { return stoch_block_scalar(g, args...); });
  }
  if (g.sw == 1) return stoch_plane_step<1>(g, plane, x, y, idx);
  if (g.sw == 2) return stoch_plane_step<2>(g, plane, x, y, idx);
  return stoch_plane_step<0>(g, plane, x, y, idx);
}

uint32_t stoch_row_avx2(const StochGeometry& g, int64_t n, int64_t oh, const float* x, float* y,
                        int64_t* idx) {
  if (g.training) {
    return stoch_row_impl(g, n, oh, x, y, idx,
                          [&g](auto... args) { return stoch_block8x2<1, true>(g, args...); });
  }
  return stoch_row_impl(g, n, oh, x, y, idx,
                        [&g](auto... args) { return stoch_block8x2<1, false>(g, args...); });
}

uint32_t stoch_max_bits_avx2(int64_t n, const float* x) { return stoch_max_bits_impl(n, x); }

}  // namespace cnnfast::kernels
