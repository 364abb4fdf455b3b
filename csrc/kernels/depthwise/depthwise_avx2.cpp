// Depthwise kernels, AVX2 tier: 8 lanes, fused multiply-add in both kernels.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/depthwise/depthwise.h"

namespace cnnfast::kernels {

void dw_row_avx2(int64_t n, const float* x, int64_t step, float w, float* acc) {
  const __m256 wv = _mm256_set1_ps(w);
  int64_t i = 0;
  if (step == 1) {
    for (; i + 8 <= n; i += 8) {
      _mm256_storeu_ps(acc + i,
                       _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(acc + i)));
    }
  }
  for (; i < n; ++i) acc[i] = std::fma(w, x[i * step], acc[i]);
}

void dw_pixel_avx2(int64_t c, const float* const* taps, const float* const* weights, int ntaps,
                   int64_t npix, int64_t step, int /*kw*/, int64_t /*col_step*/, float* out) {
  for (int64_t px = 0; px < npix; ++px, out += c) {
    const int64_t o = px * step;
    int64_t j = 0;
    for (; j + 8 <= c; j += 8) {
      __m256 a = _mm256_setzero_ps();
      for (int t = 0; t < ntaps; ++t) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(taps[t] + o + j), _mm256_loadu_ps(weights[t] + j), a);
      }
      _mm256_storeu_ps(out + j, a);
    }
    for (; j < c; ++j) {
      float a = 0.0f;
      for (int t = 0; t < ntaps; ++t) a = std::fma(taps[t][o + j], weights[t][j], a);
      out[j] = a;
    }
  }
}

namespace {
#include "kernels/depthwise/depthwise_impl.h"
}  // namespace

bool dw_plane_avx2(const float* x, const float* wk, const DwPlaneShape& s, int64_t first,
                   int64_t count, int64_t mult, const DwEpilogue* ep, float* y) {
  return planes_by_rows(x, wk, s, first, count, mult, ep, y, dw_row_avx2);
}

void dw_volume_avx2(const float* const* planes, int64_t kd, const float* wk, const DwPlaneShape& s,
                    float* y) {
  volume_by_rows(planes, kd, wk, s, y, dw_row_avx2);
}

}  // namespace cnnfast::kernels
