// The deformable sampling run of deform.h for the AVX-512 tier: 16 channels a step, the tail
// masked (masked loads never touch memory past the run).
#include <immintrin.h>

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

}  // namespace

void deform_run_avx512(const float* x, int64_t pixel_stride, const DeformSample* samples,
                       int64_t sample_stride, int64_t group_channels, int64_t c0, int64_t len,
                       const float* zeros, float* dst) {
  deform_run_impl(x, pixel_stride, samples, sample_stride, group_channels, c0, len, zeros, dst,
                  bilinear);
}

}  // namespace cnnfast::kernels
