// The deformable sampling run of deform.h for the AVX-512 tier: 16 channels a step, the tail
// masked (masked loads never touch memory past the run).
#include <immintrin.h>

#include <climits>
#include <cstdint>

#include "kernels/deform/deform.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/deform/deform_impl.h"

__m512 sample16(const float* const* p, const __m512* w, int64_t c, __mmask16 mask) {
  __m512 acc = _mm512_mul_ps(w[0], _mm512_maskz_loadu_ps(mask, p[0] + c));
  acc = _mm512_fmadd_ps(w[1], _mm512_maskz_loadu_ps(mask, p[1] + c), acc);
  acc = _mm512_fmadd_ps(w[2], _mm512_maskz_loadu_ps(mask, p[2] + c), acc);
  return _mm512_fmadd_ps(w[3], _mm512_maskz_loadu_ps(mask, p[3] + c), acc);
}

void bilinear(int64_t len, const float* const* p, const float* w, float* dst) {
  const __m512 wv[4] = {_mm512_set1_ps(w[0]), _mm512_set1_ps(w[1]), _mm512_set1_ps(w[2]),
                        _mm512_set1_ps(w[3])};
  int64_t c = 0;
  for (; c + 16 <= len; c += 16) _mm512_storeu_ps(dst + c, sample16(p, wv, c, 0xFFFF));
  if (c < len) {
    const __mmask16 mask = __mmask16((1u << (len - c)) - 1);
    _mm512_mask_storeu_ps(dst + c, mask, sample16(p, wv, c, mask));
  }
}

// The 16 entries held as 8 vectors of lanes (corner[0..3] as floats' bits, weight[0..3]) stored
// as DeformSample structs, entry i at out[i*out_stride], i < n: an 8x16 -> 16x8 transpose in
// registers. (A scalar interleave through the stack took half of the plan's time, which was
// 14 % of a 64@56x56 4-offset-group layer: perf.)
inline __attribute__((always_inline)) void store_entries(const __m512* v, int n, DeformSample* out,
                                                         int64_t out_stride) {
  __m512 u[8];
  for (int h = 0; h < 2; ++h) {  // corners (h = 0), weights (h = 1)
    const __m512* s = v + 4 * h;
    const __m512 t0 = _mm512_unpacklo_ps(s[0], s[1]), t1 = _mm512_unpackhi_ps(s[0], s[1]);
    const __m512 t2 = _mm512_unpacklo_ps(s[2], s[3]), t3 = _mm512_unpackhi_ps(s[2], s[3]);
    // u[4h + j], 128-bit lane L: the four values of entry 4L + j.
    u[4 * h + 0] = _mm512_shuffle_ps(t0, t2, 0x44);
    u[4 * h + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    u[4 * h + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
    u[4 * h + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    // pair[0]: entries j (low 256 bits) and 4 + j; pair[1]: entries 8 + j and 12 + j.
    const __m512 lo = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 pair[2] = {_mm512_shuffle_f32x4(lo, lo, _MM_SHUFFLE(3, 1, 2, 0)),
                            _mm512_shuffle_f32x4(hi, hi, _MM_SHUFFLE(3, 1, 2, 0))};
    for (int e = j, k = 0; e < n; e += 4, ++k) {
      float* dst = reinterpret_cast<float*>(out + e * out_stride);
      _mm256_storeu_ps(dst, k % 2 == 0 ? _mm512_castps512_ps256(pair[k / 2])
                                       : _mm512_extractf32x8_ps(pair[k / 2], 1));
    }
  }
}

// plan_entry for 16 pixels at once (the same operations in the same order, so the entries are
// bitwise those of the other tiers).
inline __attribute__((always_inline)) void plan16(int n, __m512 y, __m512 x, __m512 mask, int64_t h,
                                                  int64_t w, DeformSample* out,
                                                  int64_t out_stride) {
  const __m512 one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  const __mmask16 nan = _mm512_cmp_ps_mask(y, x, _CMP_UNORD_Q);
  const __mmask16 inside = _mm512_cmp_ps_mask(y, minus_one, _CMP_GT_OQ) &
                           _mm512_cmp_ps_mask(y, _mm512_set1_ps(float(h)), _CMP_LT_OQ) &
                           _mm512_cmp_ps_mask(x, minus_one, _CMP_GT_OQ) &
                           _mm512_cmp_ps_mask(x, _mm512_set1_ps(float(w)), _CMP_LT_OQ);
  const __m512 y0f =
      _mm512_maskz_roundscale_ps(0xFFFF, y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 x0f =
      _mm512_maskz_roundscale_ps(0xFFFF, x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 ly = _mm512_sub_ps(y, y0f), lx = _mm512_sub_ps(x, x0f);
  const __m512 hy = _mm512_sub_ps(one, ly), hx = _mm512_sub_ps(one, lx);
  // Outside: 0 * mask (NaN for a NaN mask); NaN coordinates: NaN.
  const __m512 outside = _mm512_mul_ps(_mm512_setzero_ps(), mask);
  const __m512 nan_v = _mm512_set1_ps(__builtin_nanf(""));
  const __m512 wv[4] = {
      _mm512_mul_ps(_mm512_mul_ps(hy, hx), mask), _mm512_mul_ps(_mm512_mul_ps(hy, lx), mask),
      _mm512_mul_ps(_mm512_mul_ps(ly, hx), mask), _mm512_mul_ps(_mm512_mul_ps(ly, lx), mask)};
  __m512 v[8];  // corner[0..3] (as float bits), weight[0..3]
  for (int k = 0; k < 4; ++k) {
    v[4 + k] = _mm512_mask_mov_ps(_mm512_mask_mov_ps(outside, inside, wv[k]), nan, nan_v);
  }
  // Corners (only lanes inside: elsewhere y0, x0 are meaningless and masked away). The maskz
  // forms of the intrinsics avoid GCC 12's -Wuninitialized on _mm512_undefined inside them.
  const __m512i y0 = _mm512_maskz_cvttps_epi32(0xFFFF, y0f);
  const __m512i x0 = _mm512_maskz_cvttps_epi32(0xFFFF, x0f);
  const __m512i zero = _mm512_setzero_si512(), wi = _mm512_set1_epi32(int32_t(w));
  const __mmask16 top = inside & _mm512_cmpge_epi32_mask(y0, zero);
  const __mmask16 bottom = inside & _mm512_cmplt_epi32_mask(y0, _mm512_set1_epi32(int32_t(h - 1)));
  const __mmask16 left = _mm512_cmpge_epi32_mask(x0, zero);
  const __mmask16 right = _mm512_cmplt_epi32_mask(x0, _mm512_set1_epi32(int32_t(w - 1)));
  const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(y0, wi), x0);
  const __m512i none = _mm512_set1_epi32(-1), one_i = _mm512_set1_epi32(1);
  const __m512i below = _mm512_add_epi32(idx, wi);
  v[0] = _mm512_castsi512_ps(_mm512_mask_mov_epi32(none, top & left, idx));
  v[1] =
      _mm512_castsi512_ps(_mm512_mask_mov_epi32(none, top & right, _mm512_add_epi32(idx, one_i)));
  v[2] = _mm512_castsi512_ps(_mm512_mask_mov_epi32(none, bottom & left, below));
  v[3] = _mm512_castsi512_ps(
      _mm512_mask_mov_epi32(none, bottom & right, _mm512_add_epi32(below, one_i)));
  store_entries(v, n, out, out_stride);
}

// 16 floats at p[i*stride] for the lanes of `mask` (zeros elsewhere). The gather's lane offsets
// are 32-bit: larger strides load lane by lane.
__m512 load_strided(const float* p, int64_t stride, __mmask16 mask) {
  if (stride == 1) return _mm512_maskz_loadu_ps(mask, p);
  if (stride > INT32_MAX / 15) {
    alignas(64) float v[16] = {};
    for (int i = 0; i < 16; ++i) {
      if (mask >> i & 1) v[i] = p[i * stride];
    }
    return _mm512_load_ps(v);
  }
  const __m512i index =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(int32_t(stride)));
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, p, 4);
}

}  // namespace

void deform_plan_avx512(int64_t count, float y, int64_t x0, int64_t x_step, const float* dy,
                        const float* dx, int64_t stride, const float* m, int64_t m_stride,
                        int64_t h, int64_t w, DeformSample* out, int64_t out_stride) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 y_grid = _mm512_set1_ps(y);
  for (int64_t i = 0; i < count; i += 16) {
    const int n = int(count - i < 16 ? count - i : 16);
    const __mmask16 valid = __mmask16((1u << n) - 1);
    // float(x0 + (i + lane)*x_step) exactly as the scalar tiers form it (integers < 2^24).
    const __m512 x_grid = _mm512_cvtepi32_ps(
        _mm512_add_epi32(_mm512_set1_epi32(int32_t(x0 + i * x_step)),
                         _mm512_mullo_epi32(lane, _mm512_set1_epi32(int32_t(x_step)))));
    const __m512 yv = _mm512_add_ps(y_grid, load_strided(dy + i * stride, stride, valid));
    const __m512 xv = _mm512_add_ps(x_grid, load_strided(dx + i * stride, stride, valid));
    const __m512 mv = m ? load_strided(m + i * m_stride, m_stride, valid) : _mm512_set1_ps(1.0f);
    plan16(n, yv, xv, mv, h, w, out + i * out_stride, out_stride);
  }
}

void deform_run_avx512(int count, const float* x, int64_t pixel_stride, const DeformSample* samples,
                       int64_t sample_stride, int64_t group_channels, int64_t skip, int64_t c0,
                       int64_t len, const float* zeros, float* dst, int64_t dst_stride) {
  deform_run_impl(count, x, pixel_stride, samples, sample_stride, group_channels, skip, c0, len,
                  zeros, dst, dst_stride, bilinear);
}

}  // namespace cnnfast::kernels
