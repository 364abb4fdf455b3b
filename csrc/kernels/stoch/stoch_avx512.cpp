// The stochastic pooling kernels (stoch_impl.h) compiled for the avx512 tier, with a 16-lane
// intrinsics block: the taps' sums, the 16 draws (SplitMix64 on 8 + 8 64-bit lanes) and the
// running-sum search in registers, each lane the scalar lane's operations in the same order.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/stoch/stoch.h"

// GCC 12's AVX-512 shift, convert and cast intrinsics pass an undefined vector as the unused
// merge source, which -Wuninitialized reports once they are inlined at -O3 (a false positive:
// no lane of it is kept).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace cnnfast::kernels {
namespace {
#include "kernels/stoch/stoch_impl.h"

inline __mmask16 stoch_lanes_mask(int count) {
  return count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
}

// The masks of two loads reading p[0 .. last] and no further, 16 floats each.
struct StochPairMasks {
  __mmask16 lo, hi;
  explicit StochPairMasks(int last)
      : lo(last >= 15 ? __mmask16(0xffff) : __mmask16((2u << last) - 1)),
        hi(last >= 31 ? __mmask16(0xffff)
                      : (last < 16 ? __mmask16(0) : __mmask16((2u << (last - 16)) - 1))) {}
};

// p[0], p[2], ..., p[2 * (count - 1)] (and with `odd` also p[1], p[3], ...): two masked loads
// reading only those (the last block of a row ends at the row's last inside window), the lanes
// gathered by permutes. masks: StochPairMasks(2 * count - 2), or - 1 with `odd`.
inline __m512 stoch_load_even(const float* p, StochPairMasks masks, __m512* odd = nullptr) {
  const __m512 a = _mm512_maskz_loadu_ps(masks.lo, p), b = _mm512_maskz_loadu_ps(masks.hi, p + 16);
  if (odd) {
    const __m512i odd_lanes =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *odd = _mm512_permutex2var_ps(a, odd_lanes, b);
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(a, even, b);
}

template <int kStep>
inline __m512 stoch_load(const float* p, __mmask16 m, StochPairMasks masks, __m512i index) {
  if (kStep == 1) return _mm512_maskz_loadu_ps(m, p);
  if (kStep == 2) return stoch_load_even(p, masks);
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, index, p, 4);
}

inline __m512i stoch_mix8(__m512i z) {
  z = _mm512_add_epi64(z, _mm512_set1_epi64(int64_t(0x9e3779b97f4a7c15ull)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                         _mm512_set1_epi64(int64_t(0xbf58476d1ce4e5b9ull)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                         _mm512_set1_epi64(int64_t(0x94d049bb133111ebull)));
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

// stoch_uniform for the 16 positions o0 + l * o_step.
inline __m512 stoch_uniform16(uint64_t key, uint64_t o0, uint64_t o_step) {
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i lo = _mm512_add_epi64(_mm512_set1_epi64(int64_t(o0)),
                                      _mm512_mullo_epi64(lane, _mm512_set1_epi64(int64_t(o_step))));
  const __m512i hi = _mm512_add_epi64(lo, _mm512_set1_epi64(int64_t(8 * o_step)));
  const __m512i k = _mm512_set1_epi64(int64_t(key));
  const __m256i top_lo =
      _mm512_cvtepi64_epi32(_mm512_srli_epi64(stoch_mix8(_mm512_xor_si512(k, lo)), 40));
  const __m256i top_hi =
      _mm512_cvtepi64_epi32(_mm512_srli_epi64(stoch_mix8(_mm512_xor_si512(k, hi)), 40));
  const __m512i top = _mm512_inserti64x4(_mm512_castsi256_si512(top_lo), top_hi, 1);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(top), _mm512_set1_ps(0x1p-24f));
}

// Windows of at most this many taps keep them (after the first pass) in a local array: the
// draw's pass then neither reloads nor branches per tap.
constexpr int kStochCached = 16;

// The block contract of stoch_block_scalar, lanes in registers; lanes whose float sums
// overflowed go through the scalar lane (its wide path). kKh, kKw: the window when fixed at
// compile time (0: ntaps taps, any shape); with kPairs (a 2-wide NCHW window at stride 2) taps
// 2i and 2i + 1 are neighbours, loaded together.
template <int kStep, bool kTraining, int kKh, int kKw, bool kPairs, int kCount>
uint32_t stoch_block16(const StochGeometry& g, int lanes, const float* const* src, int ntaps,
                       int64_t offset, int64_t step, uint64_t o0, uint64_t o_step, float* y,
                       int32_t* chosen) {
  constexpr int kTaps = kKh * kKw;
  static_assert(kTaps <= kStochCached, "fixed windows are cached");
  const int n = kTaps ? kTaps : ntaps;
  const int count = kCount ? kCount : lanes;
  const __mmask16 m = stoch_lanes_mask(count);
  const StochPairMasks masks(2 * count - (kPairs ? 1 : 2));
  const __m512i index = kStep ? _mm512_setzero_si512()
                              : _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                                     10, 11, 12, 13, 14, 15),
                                                   _mm512_set1_epi32(int32_t(step)));
  auto load = [&](int t) { return stoch_load<kStep>(src[t] + offset, m, masks, index); };
  const __m512 zero = _mm512_setzero_ps();
  __m512 s = zero, q = zero;
  __m512i bits = _mm512_setzero_si512();
  auto add = [&](int t, __m512 v) {  // the scalar lane's sums, from the first tap
    bits = t ? _mm512_max_epu32(bits, _mm512_castps_si512(v)) : _mm512_castps_si512(v);
    s = t ? _mm512_add_ps(s, v) : v;
    if (!kTraining) q = t ? _mm512_add_ps(q, _mm512_mul_ps(v, v)) : _mm512_mul_ps(v, v);
  };
  const bool cached = kTaps || ntaps <= kStochCached;
  __m512 taps[kTaps ? kTaps : kStochCached];
  if (cached) {
#pragma GCC unroll 16
    for (int t = 0; t < n; t += kPairs ? 2 : 1) {
      taps[t] = kPairs ? stoch_load_even(src[t] + offset, masks, &taps[t + 1]) : load(t);
    }
#pragma GCC unroll 16
    for (int t = 0; t < n; ++t) add(t, taps[t]);
  } else {
    for (int t = 0; t < n; ++t) add(t, load(t));
  }
  const __mmask16 positive = _mm512_mask_cmp_ps_mask(m, s, zero, _CMP_GT_OQ);
  __mmask16 slow;
  if (!kTraining) {
    // q - q is 0 exactly when q is finite.
    const __mmask16 finite = _mm512_cmp_ps_mask(_mm512_sub_ps(q, q), zero, _CMP_EQ_OQ);
    slow = positive & ~finite;
    _mm512_mask_storeu_ps(y, m, _mm512_maskz_div_ps(positive & finite, q, s));
    _mm512_mask_storeu_epi32(chosen, m, _mm512_setzero_si512());
  } else {
    const __mmask16 finite = _mm512_cmp_ps_mask(_mm512_sub_ps(s, s), zero, _CMP_EQ_OQ);
    slow = positive & ~finite;
    const __mmask16 need = positive & finite;
    const __m512 target = _mm512_mul_ps(stoch_uniform16(g.key, o0, o_step), s);
    __m512 c = zero, value = zero;
    __m512i pick = _mm512_setzero_si512();
    __mmask16 found = 0;
    auto step_tap = [&](int t, __m512 v) {
      c = t ? _mm512_add_ps(c, v) : v;
      const __mmask16 take =
          _mm512_mask_cmp_ps_mask(__mmask16(need & ~found), c, target, _CMP_GT_OQ);
      value = _mm512_mask_mov_ps(value, take, v);
      pick = _mm512_mask_mov_epi32(pick, take, _mm512_set1_epi32(t));
      found = __mmask16(found | take);
    };
    if (cached) {
#pragma GCC unroll 16
      for (int t = 0; t < n; ++t) step_tap(t, taps[t]);
    } else {
      for (int t = 0; t < n && found != need; ++t) step_tap(t, load(t));
    }
    _mm512_mask_storeu_ps(y, m, value);
    _mm512_mask_storeu_epi32(chosen, m, pick);
  }
  for (unsigned rest = slow; rest; rest &= rest - 1) {  // rare: each set bit once
    const int l = __builtin_ctz(rest);
    stoch_lane(g, src, ntaps, offset + l * step, o0 + uint64_t(l) * o_step, y + l, chosen + l);
  }
  // Whether any lane saw a sign bit or a NaN (the contract's test), without the horizontal max
  // (its chain of shuffles cost a tenth of a 2x2 block).
  return _mm512_cmpgt_epu32_mask(bits, _mm512_set1_epi32(0x7f800000)) ? 0xffffffffu : 0u;
}

// The plane driver with the block for this window, stride and mode.
template <int kStep, int kKh, int kKw>
uint32_t stoch_plane_with(const StochGeometry& g, int64_t plane, const float* x, float* y,
                          int64_t* idx) {
  [[maybe_unused]] constexpr bool kPairs = kStep == 2 && kKw == 2;  // used in the lambdas
  if (g.training) {
    return stoch_plane_impl(g, plane, x, y, idx, [&g](int count, auto... args) {
      return count == 16 ? stoch_block16<kStep, true, kKh, kKw, kPairs, 16>(g, 16, args...)
                         : stoch_block16<kStep, true, kKh, kKw, kPairs, 0>(g, count, args...);
    });
  }
  return stoch_plane_impl(g, plane, x, y, idx, [&g](int count, auto... args) {
    return count == 16 ? stoch_block16<kStep, false, kKh, kKw, kPairs, 16>(g, 16, args...)
                       : stoch_block16<kStep, false, kKh, kKw, kPairs, 0>(g, count, args...);
  });
}

template <int kStep>
uint32_t stoch_plane_step(const StochGeometry& g, int64_t plane, const float* x, float* y,
                          int64_t* idx) {
  if (g.kh == 2 && g.kw == 2) return stoch_plane_with<kStep, 2, 2>(g, plane, x, y, idx);
  if (g.kh == 3 && g.kw == 3) return stoch_plane_with<kStep, 3, 3>(g, plane, x, y, idx);
  return stoch_plane_with<kStep, 0, 0>(g, plane, x, y, idx);
}

// NHWC: whole 2x2 / 3x3 windows through the fixed blocks, cut ones through the general one.
template <bool kTraining>
uint32_t stoch_row_with(const StochGeometry& g, int64_t n, int64_t oh, const float* x, float* y,
                        int64_t* idx) {
  return stoch_row_impl(
      g, n, oh, x, y, idx, [&g](int count, const float* const* src, int ntaps, auto... rest) {
        if (ntaps == 4 && g.kh == 2 && g.kw == 2) {
          return count == 16
                     ? stoch_block16<1, kTraining, 2, 2, false, 16>(g, 16, src, ntaps, rest...)
                     : stoch_block16<1, kTraining, 2, 2, false, 0>(g, count, src, ntaps, rest...);
        }
        if (ntaps == 9 && g.kh == 3 && g.kw == 3) {
          return count == 16
                     ? stoch_block16<1, kTraining, 3, 3, false, 16>(g, 16, src, ntaps, rest...)
                     : stoch_block16<1, kTraining, 3, 3, false, 0>(g, count, src, ntaps, rest...);
        }
        return stoch_block16<1, kTraining, 0, 0, false, 0>(g, count, src, ntaps, rest...);
      });
}

}  // namespace

uint32_t stoch_plane_avx512(const StochGeometry& g, int64_t plane, const float* x, float* y,
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

uint32_t stoch_row_avx512(const StochGeometry& g, int64_t n, int64_t oh, const float* x, float* y,
                          int64_t* idx) {
  return g.training ? stoch_row_with<true>(g, n, oh, x, y, idx)
                    : stoch_row_with<false>(g, n, oh, x, y, idx);
}

uint32_t stoch_max_bits_avx512(int64_t n, const float* x) { return stoch_max_bits_impl(n, x); }

}  // namespace cnnfast::kernels
