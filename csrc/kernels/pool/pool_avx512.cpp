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
  const __m256 half = _mm256_add_ps(hi, _mm512_castps512_ps256(v));
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

void pool_taps_max_avx512(int64_t c, const float* const* taps, const int64_t* pos, int ntaps,
                          float* out, int64_t* idx, int64_t first) {
  if (idx) return pool_taps_max_impl(c, taps, pos, ntaps, out, idx, first);
  for (int64_t j = 0; j < c; j += 16) {
    const __mmask16 m = tail_mask(c - j);
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (int t = 0; t < ntaps; ++t) {
      const __m512 v = _mm512_maskz_loadu_ps(m, taps[t] + j);
      // v > acc or v is NaN (unordered with itself): take v.
      const __mmask16 take =
          _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      acc = _mm512_mask_mov_ps(acc, take, v);
    }
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
  for (; j + 32 <= c; j += 32) {  // two vectors per pass: two independent add chains
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int t = 0; t < ntaps; ++t) {
      const __m512 v0 = _mm512_loadu_ps(taps[t] + j), v1 = _mm512_loadu_ps(taps[t] + j + 16);
      a0 = power == 0.0f ? _mm512_add_ps(a0, v0) : _mm512_fmadd_ps(v0, v0, a0);
      a1 = power == 0.0f ? _mm512_add_ps(a1, v1) : _mm512_fmadd_ps(v1, v1, a1);
    }
    _mm512_storeu_ps(out + j, _mm512_mul_ps(a0, s));
    _mm512_storeu_ps(out + j + 16, _mm512_mul_ps(a1, s));
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

}  // namespace cnnfast::kernels
