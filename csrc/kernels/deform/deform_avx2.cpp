// The bilinear channel-run sample of deform.h for the AVX2 tier: 8 channels a step, the tail
// through a masked load and store (never touching memory past the run).
#include <immintrin.h>

#include <cstdint>

#include "kernels/deform/deform.h"

namespace cnnfast::kernels {
namespace {

__m256 sample8(const float* const* p, const __m256* w, int64_t c, __m256i mask) {
  __m256 acc = _mm256_mul_ps(w[0], _mm256_maskload_ps(p[0] + c, mask));
  acc = _mm256_fmadd_ps(w[1], _mm256_maskload_ps(p[1] + c, mask), acc);
  acc = _mm256_fmadd_ps(w[2], _mm256_maskload_ps(p[2] + c, mask), acc);
  return _mm256_fmadd_ps(w[3], _mm256_maskload_ps(p[3] + c, mask), acc);
}

}  // namespace

void bilinear_row_avx2(int64_t len, const float* const* p, const float* w, float* dst) {
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

}  // namespace cnnfast::kernels
