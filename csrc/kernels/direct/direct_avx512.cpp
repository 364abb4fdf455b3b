// The direct convolution kernel, AVX-512 tier: 16 output pixels of a row in one register per
// output channel, each input vector loaded once and used by every output channel of the block
// (a broadcast weight and a masked FMA each), border lanes masked as in the depthwise plane
// kernel. Strides 1 and 2; others use the generic loops.
#include <immintrin.h>

#include <cstdint>

#include "kernels/direct/direct.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/direct/direct_impl.h"

constexpr int kMaxColumns = 64;

#include "kernels/depthwise/columns_avx512.h"

template <int kOc>
void planes(const float* x, int64_t c_count, int64_t x_plane, const float* w, const DwPlaneShape& s,
            float* y, int64_t y_plane) {
  const int64_t taps = s.kh * s.kw, w_stride = c_count * taps;
  for (int64_t ow0 = 0; ow0 < s.ow; ow0 += 16) {
    ColumnMasks masks[kMaxColumns];
    for (int64_t j = 0; j < s.kw; ++j) masks[j] = column_masks(s, ow0, j);
    const int64_t left = s.ow - ow0;
    const __mmask16 store = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    for (int64_t oh = 0; oh < s.oh; ++oh) {
      __m512 acc[kOc];
      for (int o = 0; o < kOc; ++o) acc[o] = _mm512_setzero_ps();
      for (int64_t c = 0; c < c_count; ++c) {
        const float* wc = w + c * taps;
        for (int64_t i = 0; i < s.kh; ++i) {
          const int64_t ih = oh * s.stride_h - s.pad_top + i * s.dilation_h;
          if (ih < 0 || ih >= s.h) continue;
          const float* row = x + c * x_plane + ih * s.w;
          for (int64_t j = 0; j < s.kw; ++j) {
            const ColumnMasks& m = masks[j];
            if (!m.lanes) continue;
            const float* base = row + ow0 * s.stride_w + j * s.dilation_w - s.pad_left;
            const __m512 v = load_columns(m, base, s.stride_w);
            const float* wt = wc + i * s.kw + j;
            for (int o = 0; o < kOc; ++o) {
              acc[o] = _mm512_mask3_fmadd_ps(_mm512_set1_ps(wt[o * w_stride]), v, acc[o], m.lanes);
            }
          }
        }
      }
      for (int o = 0; o < kOc; ++o) {
        _mm512_mask_storeu_ps(y + o * y_plane + oh * s.ow + ow0, store, acc[o]);
      }
    }
  }
}

}  // namespace

void direct_planes_avx512(const float* x, int64_t c_count, int64_t x_plane, const float* w,
                          int oc_count, const DwPlaneShape& s, float* y, int64_t y_plane) {
  if (s.stride_w > 2 || s.kw > kMaxColumns) {
    return direct_planes_impl(x, c_count, x_plane, w, oc_count, s, y, y_plane);
  }
  switch (oc_count) {
#define CNNFAST_CASE(n) \
  case n:               \
    return planes<n>(x, c_count, x_plane, w, s, y, y_plane);
    CNNFAST_CASE(1)
    CNNFAST_CASE(2)
    CNNFAST_CASE(3)
    CNNFAST_CASE(4)
    CNNFAST_CASE(5)
    CNNFAST_CASE(6)
    CNNFAST_CASE(7)
    CNNFAST_CASE(8)
#undef CNNFAST_CASE
    default:
      direct_planes_impl(x, c_count, x_plane, w, oc_count, s, y, y_plane);
  }
}

}  // namespace cnnfast::kernels
