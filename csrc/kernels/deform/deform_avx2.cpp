// The deformable sampling run of deform.h for the AVX2 tier: 8 channels a step, the tail
// through masked loads and stores (never touching memory past the run).
#include <immintrin.h>

#include <cstdint>

#include "kernels/deform/deform.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/deform/deform_impl.h"

__m256 sample8(const float* const* p, const __m256* w, int64_t c, __m256i mask) {
  __m256 acc = _mm256_mul_ps(w[0], _mm256_maskload_ps(p[0] + c, mask));
  acc = _mm256_fmadd_ps(w[1], _mm256_maskload_ps(p[1] + c, mask), acc);
  acc = _mm256_fmadd_ps(w[2], _mm256_maskload_ps(p[2] + c, mask), acc);
  return _mm256_fmadd_ps(w[3], _mm256_maskload_ps(p[3] + c, mask), acc);
}

void bilinear(int64_t len, const float* const* p, const float* w, float* dst) {
  const __m256 wv[4] = {_mm256_set1_ps(w[0]), _mm256_set1_ps(w[1]), _mm256_set1_ps(w[2]),
                        _mm256_set1_ps(w[3])};
  const __m256i all = _mm256_set1_epi32(-1);
  int64_t c = 0;
  for (; c + 8 <= len; c += 8) _mm256_storeu_ps(dst + c, sample8(p, wv, c, all));
  if (c < len) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(len - c)), lane);
    _mm256_maskstore_ps(dst + c, mask, sample8(p, wv, c, mask));
  }
}

}  // namespace

void deform_run_avx2(int count, const float* x, int64_t pixel_stride, const DeformSample* samples,
                     int64_t sample_stride, int64_t group_channels, int64_t skip, int64_t c0,
                     int64_t len, const float* zeros, float* dst, int64_t dst_stride) {
  deform_run_impl(count, x, pixel_stride, samples, sample_stride, group_channels, skip, c0, len,
                  zeros, dst, dst_stride, bilinear);
}

void deform_plan_avx2(int64_t count, float y, int64_t x0, int64_t x_step, const float* dy,
                      const float* dx, int64_t stride, const float* m, int64_t m_stride, int64_t h,
                      int64_t w, DeformSample* out, int64_t out_stride) {
  deform_plan_impl(count, y, x0, x_step, dy, dx, stride, m, m_stride, h, w, out, out_stride);
}

}  // namespace cnnfast::kernels
