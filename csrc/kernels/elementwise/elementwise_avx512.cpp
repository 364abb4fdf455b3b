// The elementwise kernels (elementwise_impl.h) compiled for the avx512 tier.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/elementwise/elementwise.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/elementwise/elementwise_impl.h"
#include "kernels/transpose_avx512.h"

inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }
}  // namespace

void scale_shift_avx512(int64_t n, const float* x, ChannelAffine a, Activation act, float alpha,
                        float* y) {
  scale_shift_impl(n, x, a, act, alpha, y);
}

void scale_shift_rows_avx512(int64_t rows, int64_t c, const float* x, const float* hi,
                             const float* lo, const float* scale, const float* shift,
                             Activation act, float alpha, float* y) {
  scale_shift_rows_impl(rows, c, x, hi, lo, scale, shift, act, alpha, y);
}

void moments_avx512(int64_t n, const float* x, double* mean, double* m2) {
  moments_impl(n, x, mean, m2);
}

void moments_rows_avx512(int64_t rows, int64_t c, int64_t ld, const float* x, float* dmean,
                         float* m2) {
  moments_rows_impl(rows, c, ld, x, dmean, m2);
}

// 16x16 blocks in registers (masked at the edges): the scalar loop moved about one float per
// cycle, which made the NCHW <-> NHWC conversions of narrow depthwise layers cost more than the
// convolution.
void transpose_avx512(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst,
                      int64_t dst_ld) {
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    const int64_t ni = rows - i0 < 16 ? rows - i0 : 16;
    for (int64_t j0 = 0; j0 < cols; j0 += 16) {
      const int64_t nj = cols - j0 < 16 ? cols - j0 : 16;
      __m512 block[16];
      for (int i = 0; i < 16; ++i) {
        block[i] = i < ni ? _mm512_maskz_loadu_ps(lanes(nj), src + (i0 + i) * src_ld + j0)
                          : _mm512_setzero_ps();
      }
      transpose16x16(block);
      for (int j = 0; j < nj; ++j) {
        _mm512_mask_storeu_ps(dst + (j0 + j) * dst_ld + i0, lanes(ni), block[j]);
      }
    }
  }
}

}  // namespace cnnfast::kernels
