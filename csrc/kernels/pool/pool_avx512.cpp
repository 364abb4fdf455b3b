// The pooling kernels (pool_impl.h) compiled for the avx512 tier.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

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
inline __m512 max_nan(__m512 acc, __m512 v) {
  const __mmask16 take =
      _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(acc, take, v);
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

}  // namespace cnnfast::kernels
