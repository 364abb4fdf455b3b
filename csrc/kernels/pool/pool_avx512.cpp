// The pooling kernels (pool_impl.h) compiled for the avx512 tier.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kernels/pool/pool.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/pool/pool_impl.h"
}  // namespace

// 16 outputs of a row at input step 1 or 2, reading only the inputs they need (masked: the
// first output's window may start at the row's first element, the last at its last).
inline __m512 load_step(const float* x, int64_t step, int64_t count) {
  const __mmask16 m = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
  if (step == 1) return _mm512_maskz_loadu_ps(m, x);
  // Step 2: inputs 0, 2, ..., 2*(count-1) from two loads, the even lanes gathered by a permute.
  const int64_t last = 2 * (count - 1);  // the highest offset read
  const __mmask16 lo = last >= 15 ? __mmask16(0xffff) : __mmask16((2u << last) - 1);
  const __mmask16 hi = last >= 31 ? __mmask16(0xffff)
                                  : (last < 16 ? __mmask16(0) : __mmask16((2u << (last - 16)) - 1));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, x), even,
                                _mm512_maskz_loadu_ps(hi, x + 16));
}

// Rows at step 1 or 2 without indices (the NCHW poolings' common case) with intrinsics: the
// compiler's gather-free step-2 loop still left a scalar tail per call; other cases use the
// generic loops.
void pool_max_avx512(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx, int64_t pos,
                     int64_t pos_step) {
  if (idx || step > 2) return pool_max_impl(n, x, step, acc, idx, pos, pos_step);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t count = n - i < 16 ? n - i : 16;
    const __mmask16 m = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
    const __m512 v = load_step(x + i * step, step, count);
    const __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
    const __mmask16 take =
        _mm512_cmp_ps_mask(v, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    _mm512_mask_storeu_ps(acc + i, m & take, v);
  }
}

void pool_sum_avx512(int64_t n, const float* x, int64_t step, float power, float* acc) {
  if (power != 0.0f || step > 2) return pool_sum_impl(n, x, step, power, acc);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t count = n - i < 16 ? n - i : 16;
    const __mmask16 m = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
    const __m512 v = load_step(x + i * step, step, count);
    _mm512_mask_storeu_ps(acc + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + i), v));
  }
}

void pool_reduce_max_avx512(int64_t n, const float* x, float* acc, int64_t* idx, int64_t pos) {
  reduce_max_impl(n, x, acc, idx, pos);
}

// The sum of v's lanes in the order of GCC's _mm512_reduce_add_ps (halves, then quarters, then
// pairs), written with the maskz extract: GCC 12's own version warns -Wuninitialized on the
// _mm256_undefined_pd inside its extract.
namespace {
float sum_lanes(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), 1));
  // GCC 12's _mm512_castps512_ps256 is an extract too (and warns the same way).
  const __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), 0));
  const __m256 half = _mm256_add_ps(hi, lo);
  const __m128 quarter = _mm_add_ps(_mm256_extractf128_ps(half, 1), _mm256_castps256_ps128(half));
  const __m128 pair = _mm_add_ps(quarter, _mm_shuffle_ps(quarter, quarter, 0x4E));  // 2,3,0,1
  return _mm_cvtss_f32(pair) + _mm_cvtss_f32(_mm_shuffle_ps(pair, pair, 1));
}
}  // namespace

// Intrinsics rather than the generic loop: the compiler's version of that spilled its lanes to
// the stack and took 2x longer than torch on a 2048@7x7 global average (perf).
void pool_reduce_sum_avx512(int64_t n, const float* x, float* acc) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(mask, x + i));
  }
  *acc += sum_lanes(_mm512_add_ps(a0, a1));
}

// Intrinsics for the channels-last taps: the generic lane loops came out of the compiler
// partly scalar, 2-4x slower than torch's channels-last pooling (perf).
inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

// acc = max(acc, v) by the PoolMaxFn rule: v wins when greater or NaN (unordered with itself).
// max_ps(v, acc) is v > acc ? v : acc, and acc when either is NaN; the fixup then puts back a
// NaN v (its table: a quiet or signalling NaN v answers v, any other class keeps the max).
// Measured on this host, 8 independent chains from L1: as fast as a plain max (0.29 ns per
// vector), where two compares and a blend took 0.68 ns.
// (The maskz form of the max: GCC 12 warns -Wuninitialized on the _mm512_undefined_ps inside
// _mm512_max_ps once it is inlined into the plane kernels.)
inline __m512 max_nan(__m512 acc, __m512 v) {
  const __m512 larger = _mm512_maskz_max_ps(__mmask16(0xffff), v, acc);
  return _mm512_fixupimm_ps(larger, v, _mm512_set1_epi32(0x11), 0);
}

void pool_taps_max_avx512(int64_t c, const float* const* taps, const int64_t* pos, int ntaps,
                          float* out, int64_t* idx, int64_t first) {
  if (idx) return pool_taps_max_impl(c, taps, pos, ntaps, out, idx, first);
  int64_t j = 0;
  for (; j + 64 <= c; j += 64) {  // four independent compare chains
    __m512 acc[4];
    for (int u = 0; u < 4; ++u) acc[u] = _mm512_set1_ps(-INFINITY);
    for (int t = 0; t < ntaps; ++t) {
      for (int u = 0; u < 4; ++u) acc[u] = max_nan(acc[u], _mm512_loadu_ps(taps[t] + j + 16 * u));
    }
    for (int u = 0; u < 4; ++u) _mm512_storeu_ps(out + j + 16 * u, acc[u]);
  }
  for (; j + 16 <= c; j += 16) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (int t = 0; t < ntaps; ++t) acc = max_nan(acc, _mm512_loadu_ps(taps[t] + j));
    _mm512_storeu_ps(out + j, acc);
  }
  for (; j < c; j += 16) {
    const __mmask16 m = tail_mask(c - j);
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (int t = 0; t < ntaps; ++t) acc = max_nan(acc, _mm512_maskz_loadu_ps(m, taps[t] + j));
    _mm512_mask_storeu_ps(out + j, m, acc);
  }
}

void pool_taps_sum_avx512(int64_t c, const float* const* taps, int ntaps, float power, float scale,
                          float* out) {
  if (power != 0.0f && power != 2.0f) {
    return pool_taps_sum_impl(c, taps, ntaps, power, scale, out);
  }
  const __m512 s = _mm512_set1_ps(scale);
  int64_t j = 0;
  for (; j + 64 <= c; j += 64) {  // four vectors per pass: four independent add chains
    __m512 a[4];
    for (int u = 0; u < 4; ++u) a[u] = _mm512_setzero_ps();
    for (int t = 0; t < ntaps; ++t) {
      for (int u = 0; u < 4; ++u) {
        const __m512 v = _mm512_loadu_ps(taps[t] + j + 16 * u);
        a[u] = power == 0.0f ? _mm512_add_ps(a[u], v) : _mm512_fmadd_ps(v, v, a[u]);
      }
    }
    for (int u = 0; u < 4; ++u) _mm512_storeu_ps(out + j + 16 * u, _mm512_mul_ps(a[u], s));
  }
  for (; j + 16 <= c; j += 16) {
    __m512 a = _mm512_setzero_ps();
    for (int t = 0; t < ntaps; ++t) {
      const __m512 v = _mm512_loadu_ps(taps[t] + j);
      a = power == 0.0f ? _mm512_add_ps(a, v) : _mm512_fmadd_ps(v, v, a);
    }
    _mm512_storeu_ps(out + j, _mm512_mul_ps(a, s));
  }
  for (; j < c; j += 16) {
    const __mmask16 m = tail_mask(c - j);
    __m512 a = _mm512_setzero_ps();
    for (int t = 0; t < ntaps; ++t) {
      const __m512 v = _mm512_maskz_loadu_ps(m, taps[t] + j);
      a = power == 0.0f ? _mm512_add_ps(a, v) : _mm512_fmadd_ps(v, v, a);
    }
    _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(a, s));
  }
}

// 16 * kVec outputs of a row at step kStep (1 or 2), all taps in kVec independent registers,
// with unmasked loads (only a row's last 16 outputs take the masked path).
template <bool kMax, int kStep, int kVec>
inline void row_block(const float* src, int64_t dilation, int k, const float* col_scale,
                      float* out) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 acc[kVec];
  for (int u = 0; u < kVec; ++u) acc[u] = kMax ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
  for (int t = 0; t < k; ++t, src += dilation) {
    for (int u = 0; u < kVec; ++u) {
      const float* at = src + u * 16 * kStep;
      const __m512 v =
          kStep == 1 ? _mm512_loadu_ps(at)
                     : _mm512_permutex2var_ps(_mm512_loadu_ps(at), even, _mm512_loadu_ps(at + 16));
      acc[u] = kMax ? max_nan(acc[u], v) : _mm512_add_ps(acc[u], v);
    }
  }
  for (int u = 0; u < kVec; ++u) {
    if (!kMax) acc[u] = _mm512_mul_ps(acc[u], _mm512_loadu_ps(col_scale + 16 * u));
    _mm512_storeu_ps(out + 16 * u, acc[u]);
  }
}

template <bool kMax, int kStep>
void row_steps(int64_t n, const float* v, int64_t dilation, int k, const float* col_scale,
               float* out) {
  // Full blocks may read up to kStep - 1 floats past the last tap a window uses (a step-2
  // load's odd lane); those lie inside the padded row only when a window follows. So full
  // blocks stop where a masked tail reads exactly what it needs.
  int64_t j = 0;
  for (; j + 64 < n; j += 64) {
    row_block<kMax, kStep, 4>(v + j * kStep, dilation, k, col_scale + j, out + j);
  }
  for (; j + 16 < n; j += 16) {
    row_block<kMax, kStep, 1>(v + j * kStep, dilation, k, col_scale + j, out + j);
  }
  for (; j < n; j += 16) {
    const int64_t count = n - j < 16 ? n - j : 16;
    const __mmask16 m = tail_mask(count);
    const float* src = v + j * kStep;
    __m512 acc = kMax ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
    for (int t = 0; t < k; ++t) {
      const __m512 x = load_step(src + t * dilation, kStep, count);
      acc = kMax ? max_nan(acc, x) : _mm512_add_ps(acc, x);
    }
    if (!kMax) acc = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(m, col_scale + j));
    _mm512_mask_storeu_ps(out + j, m, acc);
  }
}

// A row's taps in registers at step 1 or 2 (no gathers); other steps use the generic loop.
void pool_row_avx512(int64_t n, const float* v, int64_t step, int64_t dilation, int k, bool is_max,
                     const float* col_scale, float* out) {
  if (step > 2) return pool_row_impl(n, v, step, dilation, k, is_max, col_scale, out);
  if (is_max) {
    return (step == 1 ? row_steps<true, 1> : row_steps<true, 2>)(n, v, dilation, k, col_scale, out);
  }
  (step == 1 ? row_steps<false, 1> : row_steps<false, 2>)(n, v, dilation, k, col_scale, out);
}

namespace {

// f(std::integral_constant<int, i>) for i in [0, kCount): each i a constant, so arrays indexed
// by it stay in registers (GCC's unroll pragma left a loop over a register array around a
// runtime inner loop, and kept the array on the stack).
template <int kCount, class F, int... kI>
inline void for_each_constant(F&& f, std::integer_sequence<int, kI...>) {
  (f(std::integral_constant<int, kI>{}), ...);
}
template <int kCount, class F>
inline void for_each_constant(F&& f) {
  for_each_constant<kCount>(f, std::make_integer_sequence<int, kCount>{});
}

// The lanes of 16 positions from `first` that lie in [0, in_w).
inline __mmask16 inside(int64_t first, int64_t in_w) {
  const int64_t lo = first < 0 ? -first : 0, hi = in_w - first;
  if (hi <= lo || lo >= 16) return 0;
  return __mmask16(tail_mask(hi) & ~tail_mask(lo));
}

// The vector of input positions p0 .. p0 + 15 reduced over the window rows: lanes outside
// `in_row` (the lanes inside the row) hold the fill and are not read, so p0 may lie before the
// row; a full mask takes plain loads.
template <bool kMax>
inline __m512 reduce_rows(const float* x, const int64_t* offsets, int nrows, int64_t p0,
                          __mmask16 in_row) {
  const __m512 fill = kMax ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
  const auto load = [&](const float* at) {
    return in_row == 0xffff ? _mm512_loadu_ps(at) : _mm512_mask_loadu_ps(fill, in_row, at);
  };
  __m512 v = load(x + offsets[0] + p0);
  for (int r = 1; r < nrows; ++r) {
    const __m512 row = load(x + offsets[r] + p0);
    v = kMax ? max_nan(v, row) : _mm512_add_ps(v, row);
  }
  return v;
}

// One output row, 16 outputs per block. A block's window rows reduce into kVecs vectors
// (positions base .. base + 16*kVecs), and each w tap is a lane permute of those: at step 2 the
// even and odd positions are split once, and tap t is the even (t even) or odd vector shifted
// by t / 2. The next block starts 16*kStep positions on, so it reuses the vectors past that.
// Every index is a constant, so the vectors stay in registers (a version with runtime taps
// kept them on the stack and ran 2x slower than the reduced row in memory).
template <bool kMax, int kStep, int kK>
void plane_row(const float* x, const int64_t* offsets, int nrows, int64_t n, int64_t start,
               const __mmask16* masks, const float* scales, float* out) {
  constexpr int kVecs = (15 * kStep + kK + 15) / 16;  // positions read: 15 * kStep + kK
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_add_epi32(lanes, lanes);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  __m512 v[kVecs];
  int64_t base = start;
  for_each_constant<kVecs>(
      [&](auto q) { v[q] = reduce_rows<kMax>(x, offsets, nrows, base + 16 * q, masks[q]); });
  for (int64_t j = 0;;) {
    __m512 acc;
    if constexpr (kStep == 1) {
      acc = v[0];
      if constexpr (kVecs > 1) {
#pragma GCC unroll 8
        for (int t = 1; t < kK; ++t) {  // t < 16: v[0] and v[1]
          const __m512 tap =
              _mm512_permutex2var_ps(v[0], _mm512_add_epi32(lanes, _mm512_set1_epi32(t)), v[1]);
          acc = kMax ? max_nan(acc, tap) : _mm512_add_ps(acc, tap);
        }
      }
    } else {
      // Positions 0-31 split into even and odd lanes; taps past the first two also read
      // positions 32-47 (the third vector).
      const __m512 split[2] = {_mm512_permutex2var_ps(v[0], even, v[1]),
                               _mm512_permutex2var_ps(v[0], odd, v[1])};
      __m512 next[2] = {split[0], split[1]};
      if constexpr (kVecs > 2) {
        next[0] = _mm512_permutex2var_ps(v[2], even, v[2]);
        next[1] = _mm512_permutex2var_ps(v[2], odd, v[2]);
      }
      acc = split[0];
#pragma GCC unroll 8
      for (int t = 1; t < kK; ++t) {
        const int shift = t >> 1;
        const __m512 tap =
            shift == 0
                ? split[t & 1]
                : _mm512_permutex2var_ps(
                      split[t & 1], _mm512_add_epi32(lanes, _mm512_set1_epi32(shift)), next[t & 1]);
        acc = kMax ? max_nan(acc, tap) : _mm512_add_ps(acc, tap);
      }
    }
    if (n - j >= 16) {
      if (!kMax) acc = _mm512_mul_ps(acc, _mm512_loadu_ps(scales + j));
      _mm512_storeu_ps(out + j, acc);
    } else {
      const __mmask16 m = tail_mask(n - j);
      if (!kMax) acc = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(m, scales + j));
      _mm512_mask_storeu_ps(out + j, m, acc);
    }
    j += 16;
    if (j >= n) break;
    base += 16 * kStep;
    masks += kStep;
    for_each_constant<kVecs>([&](auto q) {
      if constexpr (q + kStep < kVecs) {
        v[q] = v[q + kStep];
      } else {
        v[q] = reduce_rows<kMax>(x, offsets, nrows, base + 16 * q, masks[q]);
      }
    });
  }
}

template <bool kMax, int kStep, int kK>
void plane(const PoolPlane& pl, const float* x, float* y) {
  // Vector i of a row (input positions start + 16i ..) has the same lanes inside the row in
  // every output row: worked out once per plane (per row and vector, the mask arithmetic cost
  // more than the loads on rows of 28-56 outputs). Rows of more than kChunk outputs are done
  // kChunk outputs at a time, their masks worked out per chunk.
  constexpr int kVecs = (15 * kStep + kK + 15) / 16;
  constexpr int64_t kChunk = 1024, kMaxVectors = kChunk / 16 * kStep + kVecs;
  __mmask16 masks[kMaxVectors];
  const int64_t vectors = (std::min(kChunk, pl.out_w) + 15) / 16 * kStep + kVecs;
  const auto chunk_masks = [&](int64_t start) {
    for (int64_t i = 0; i < vectors; ++i) masks[i] = inside(start + 16 * i, pl.in_w);
  };
  const bool one_chunk = pl.out_w <= kChunk;
  if (one_chunk) chunk_masks(pl.start);
  for (int64_t o = 0; o < pl.out_rows; ++o, y += pl.out_w) {
    const int nrows = pl.counts[o];
    if (nrows == 0) {  // no window row inside the input: the fill, as the per-tap paths give
      const float fill = kMax ? -INFINITY : 0.0f;
      for (int64_t j = 0; j < pl.out_w; ++j) y[j] = fill;
      continue;
    }
    const int64_t* offsets = pl.offsets + o * pl.max_rows;
    for (int64_t j0 = 0; j0 < pl.out_w; j0 += kChunk) {
      const int64_t start = pl.start + j0 * kStep;
      if (!one_chunk) chunk_masks(start);
      plane_row<kMax, kStep, kK>(x, offsets, nrows, std::min(kChunk, pl.out_w - j0), start, masks,
                                 kMax ? nullptr : pl.scales[o] + j0, y + j0);
    }
  }
}

template <bool kMax, int kStep>
PoolPlaneFn plane_for(int k) {
  switch (k) {
    case 1:
      return plane<kMax, kStep, 1>;
    case 2:
      return plane<kMax, kStep, 2>;
    case 3:
      return plane<kMax, kStep, 3>;
    case 4:
      return plane<kMax, kStep, 4>;
    case 5:
      return plane<kMax, kStep, 5>;
    case 6:
      return plane<kMax, kStep, 6>;
    default:
      return plane<kMax, kStep, 7>;
  }
}

// kVec vectors (lanes of `mask` in the last) of one channels-last pixel from its w taps
// [t0, t1) at pixel p0: per tap the window rows reduced in row order, then the taps in order.
template <bool kMax, int kVec>
inline void pixel_block(const float* const* rows, int nrows, int64_t at, int64_t tap_stride,
                        int taps, float scale, __mmask16 mask, float* out) {
  const auto load = [&](const float* from) {
    return mask == 0xffff ? _mm512_loadu_ps(from) : _mm512_maskz_loadu_ps(mask, from);
  };
  __m512 acc[kVec];
  for (int t = 0; t < taps; ++t, at += tap_stride) {
    __m512 col[kVec];
    for_each_constant<kVec>([&](auto u) { col[u] = load(rows[0] + at + 16 * u); });
    for (int r = 1; r < nrows; ++r) {
      for_each_constant<kVec>([&](auto u) {
        const __m512 v = load(rows[r] + at + 16 * u);
        col[u] = kMax ? max_nan(col[u], v) : _mm512_add_ps(col[u], v);
      });
    }
    for_each_constant<kVec>([&](auto u) {
      acc[u] = t == 0 ? col[u] : kMax ? max_nan(acc[u], col[u]) : _mm512_add_ps(acc[u], col[u]);
    });
  }
  for_each_constant<kVec>([&](auto u) {
    if (!kMax) acc[u] = _mm512_mul_ps(acc[u], _mm512_set1_ps(scale));
    if (mask == 0xffff) {
      _mm512_storeu_ps(out + 16 * u, acc[u]);
    } else {
      _mm512_mask_storeu_ps(out + 16 * u, mask, acc[u]);
    }
  });
}

template <bool kMax>
void row_last(int64_t c, const float* const* rows, int nrows, int64_t out_w, const int64_t* begin,
              const int64_t* end, const float* scales, float* out) {
  for (int64_t j = 0; j < out_w; ++j, out += c) {
    const float scale = kMax ? 1.0f : scales[j];
    if (end[j] <= begin[j] || nrows == 0) {  // no tap inside the input: the fill
      for (int64_t i = 0; i < c; ++i) out[i] = kMax ? -INFINITY : 0.0f;
      continue;
    }
    const int64_t at = begin[j] * c;
    const int taps = int(end[j] - begin[j]);
    int64_t i = 0;
    for (; i + 64 <= c; i += 64) {
      pixel_block<kMax, 4>(rows, nrows, at + i, c, taps, scale, 0xffff, out + i);
    }
    for (; i < c; i += 16) {
      pixel_block<kMax, 1>(rows, nrows, at + i, c, taps, scale, tail_mask(c - i), out + i);
    }
  }
}

// The window's reduction of two values: the PoolMaxFn rule, or a sum.
template <bool kMax>
inline __m512 combine(__m512 a, __m512 b) {
  return kMax ? max_nan(a, b) : _mm512_add_ps(a, b);
}

// PoolFlatFn: per output vector, the reduced vectors v0 (positions 16i - k/2 ..) and v1 (the
// next 16) in registers, each tap a lane permute of the two, its padding lanes masked (the
// centre tap has none: its lanes past the plane's end are not stored). Reduced vectors whose
// rows all lie inside the plane, all but the first and last few, take plain loads.
template <bool kMax, int kK>
void flat(const PoolFlat& f, const float* x, float* y) {
  constexpr int kPad = kK / 2;
  const int64_t hw = f.h * f.w, vectors = (hw + 15) / 16;
  const __m512 fill = kMax ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Reduced vector v reads positions 16v - kPad - kPad*w .. 16v - kPad + 15 + kPad*w.
  const int64_t inner_begin = (kPad + kPad * f.w + 15) / 16;
  const int64_t inner_end = (hw + kPad - kPad * f.w) / 16;  // exclusive; may be <= begin
  // Masked-off lanes are not read: positions before the plane or past its end are never
  // touched.
  const auto reduced = [&](int64_t v) {
    const float* at = x + 16 * v - kPad - kPad * f.w;
    const auto row = [&](int r) {
      return v >= inner_begin && v < inner_end
                 ? _mm512_loadu_ps(at + r * f.w)
                 : _mm512_mask_loadu_ps(fill, f.row_masks[v * kK + r], at + r * f.w);
    };
    __m512 acc = row(0);
    for_each_constant<kK - 1>([&](auto r) { acc = combine<kMax>(acc, row(r + 1)); });
    return acc;
  };
  __m512 v0 = reduced(0), v1 = reduced(1);
  for (int64_t i = 0; i < vectors; ++i) {
    const uint16_t* m = f.tap_masks + i * kK;
    __m512 acc = _mm512_mask_mov_ps(fill, m[0], v0);
    for_each_constant<kK - 1>([&](auto t) {
      const __m512 tap =
          _mm512_permutex2var_ps(v0, _mm512_add_epi32(lanes, _mm512_set1_epi32(t + 1)), v1);
      const __m512 sum = combine<kMax>(acc, tap);
      acc = t + 1 == kPad ? sum : _mm512_mask_mov_ps(acc, m[t + 1], sum);
    });
    const __mmask16 store = tail_mask(hw - 16 * i);
    if (!kMax) acc = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(store, f.scales + 16 * i));
    _mm512_mask_storeu_ps(y + 16 * i, store, acc);
    v0 = v1;
    if (i + 2 <= vectors) v1 = reduced(i + 2);
  }
}

// PoolAdaptiveRowsFn: a row's bins at once, each tap a lane permute of the reduced row. Two
// planes advance together: one plane's rows formed a single dependent chain (loads, row sums,
// taps, scale, store) that left the core waiting.
template <bool kMax>
void adaptive_rows(const PoolAdaptiveRows& a, int64_t planes, const float* x, float* y) {
  const __m512 fill = kMax ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
  const int64_t in_w = a.in_w, out_h = a.out_h, out_w = a.out_w, in_vol = a.in_h * in_w;
  const int taps = a.taps;
  const __mmask16 in = tail_mask(in_w), out = tail_mask(out_w);
  const auto row = [&](const float* plane, int64_t oh) {
    __m512 v = _mm512_mask_loadu_ps(fill, in, plane + a.row_begin[oh] * in_w);
    for (int64_t ih = a.row_begin[oh] + 1; ih < a.row_end[oh]; ++ih) {
      const __m512 next = _mm512_mask_loadu_ps(fill, in, plane + ih * in_w);
      v = combine<kMax>(v, next);
    }
    __m512 acc = _mm512_permutexvar_ps(_mm512_loadu_si512(a.index), v);
    for (int t = 1; t < taps; ++t) {
      const __m512 tap = _mm512_permutexvar_ps(_mm512_loadu_si512(a.index + 16 * t), v);
      acc = _mm512_mask_mov_ps(acc, a.tap_masks[t], combine<kMax>(acc, tap));
    }
    return kMax ? acc : _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(out, a.scales + oh * out_w));
  };
  int64_t p = 0;
  for (; p + 2 <= planes; p += 2, x += 2 * in_vol, y += 2 * out_h * out_w) {
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const __m512 first = row(x, oh), second = row(x + in_vol, oh);
      _mm512_mask_storeu_ps(y + oh * out_w, out, first);
      _mm512_mask_storeu_ps(y + (out_h + oh) * out_w, out, second);
    }
  }
  for (int64_t oh = 0; p < planes && oh < out_h; ++oh) {
    _mm512_mask_storeu_ps(y + oh * out_w, out, row(x, oh));
  }
}

template <bool kMax>
PoolFlatFn flat_for(int k) {
  switch (k) {
    case 1:
      return flat<kMax, 1>;
    case 3:
      return flat<kMax, 3>;
    case 5:
      return flat<kMax, 5>;
    default:
      return flat<kMax, 7>;
  }
}

// The lanes of one plane's values: a vector per 16 values combined in order, the tail masked
// with the fill.
template <bool kMax>
inline __m512 plane_lanes(int64_t len, const float* x) {
  const __m512 fill = kMax ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
  __m512 acc = len >= 16 ? _mm512_loadu_ps(x) : _mm512_mask_loadu_ps(fill, tail_mask(len), x);
  for (int64_t i = 16; i < len; i += 16) {
    const __m512 v = len - i >= 16 ? _mm512_loadu_ps(x + i)
                                   : _mm512_mask_loadu_ps(fill, tail_mask(len - i), x + i);
    acc = combine<kMax>(acc, v);
  }
  return acc;
}

// 16 vectors folded into one whose lane i reduces v[i]'s 16 lanes: each step halves the vector
// count and the lanes per plane (128-bit blocks, then 64-bit pairs, then single lanes). The
// last step leaves plane 4q + j in lane 4j + q; one permute puts it in lane 4q + j.
template <bool kMax>
inline __m512 fold16(__m512* v) {
  for (int i = 0; i < 8; ++i) {  // blocks [a0 a1 b0 b1] op [a2 a3 b2 b3]
    v[i] = combine<kMax>(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {  // block j of the result: plane 4i + j, four partial lanes
    v[i] = combine<kMax>(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xDD));
  }
  for (int i = 0; i < 2; ++i) {  // lanes [a0 b0 a1 b1] op [a2 b2 a3 b3] in each block
    v[i] = combine<kMax>(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  const __m512 folded =
      combine<kMax>(_mm512_shuffle_ps(v[0], v[1], 0x44), _mm512_shuffle_ps(v[0], v[1], 0xEE));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, folded);
}

template <bool kMax>
void reduce_planes(int64_t planes, int64_t len, const float* x, float* out) {
  for (int64_t p0 = 0; p0 < planes; p0 += 16) {
    const int count = int(std::min<int64_t>(16, planes - p0));
    __m512 v[16];
    for (int i = 0; i < 16; ++i) {
      v[i] = i < count ? plane_lanes<kMax>(len, x + (p0 + i) * len) : _mm512_setzero_ps();
    }
    _mm512_mask_storeu_ps(out + p0, tail_mask(count), fold16<kMax>(v));
  }
}

}  // namespace

// in_w <= 16 and out_w <= 16 (the driver checks).
void pool_adaptive_rows_avx512(const PoolAdaptiveRows& a, int64_t planes, const float* x,
                               float* y) {
  (a.is_max ? adaptive_rows<true> : adaptive_rows<false>)(a, planes, x, y);
}

// Odd k <= kPoolPlaneMaxTaps (the driver checks).
void pool_flat_avx512(const PoolFlat& f, const float* x, float* y) {
  (f.is_max ? flat_for<true>(f.k) : flat_for<false>(f.k))(f, x, y);
}

void pool_reduce_planes_avx512(int64_t planes, int64_t len, const float* x, bool is_max,
                               float* out) {
  (is_max ? reduce_planes<true> : reduce_planes<false>)(planes, len, x, out);
}

// Step 1 or 2, k <= kPoolPlaneMaxTaps (the driver checks).
void pool_plane_avx512(const PoolPlane& pl, const float* x, float* y) {
  const PoolPlaneFn f = pl.step == 1
                            ? (pl.is_max ? plane_for<true, 1>(pl.k) : plane_for<false, 1>(pl.k))
                            : (pl.is_max ? plane_for<true, 2>(pl.k) : plane_for<false, 2>(pl.k));
  f(pl, x, y);
}

void pool_row_last_avx512(int64_t c, const float* const* rows, int nrows, int64_t out_w,
                          const int64_t* begin, const int64_t* end, bool is_max,
                          const float* scales, float* out) {
  (is_max ? row_last<true> : row_last<false>)(c, rows, nrows, out_w, begin, end, scales, out);
}

}  // namespace cnnfast::kernels
