// Depthwise kernels, AVX-512 tier: 16 lanes, fused multiply-add in both kernels, masked tails.
#include <immintrin.h>

#include <climits>
#include <cstdint>

#include "kernels/depthwise/depthwise.h"

namespace cnnfast::kernels {
namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

// Gathers take 32-bit lane offsets: lane 15 reads x[15*step], so larger steps (an input row of
// more than 2^31 elements) load lane by lane.
constexpr int64_t kMaxGatherStep = INT32_MAX / 15;

// x[0], x[step], ..., x[(count-1)*step] for count <= 16: a masked load at step 1, two masked
// loads and an even-lane permute at step 2 (only the needed inputs are read), else a gather.
inline __m512 load_step(const float* x, int64_t step, int64_t count) {
  const __mmask16 m = tail_mask(count);
  if (step == 1) return _mm512_maskz_loadu_ps(m, x);
  if (step > kMaxGatherStep) {
    alignas(64) float v[16] = {};
    for (int64_t i = 0; i < count; ++i) v[i] = x[i * step];
    return _mm512_load_ps(v);
  }
  if (step == 2) {
    const int64_t last = 2 * (count - 1);
    const __mmask16 lo = last >= 15 ? __mmask16(0xffff) : __mmask16((2u << last) - 1);
    const __mmask16 hi = last >= 31
                             ? __mmask16(0xffff)
                             : (last < 16 ? __mmask16(0) : __mmask16((2u << (last - 16)) - 1));
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, x), even,
                                  _mm512_maskz_loadu_ps(hi, x + 16));
  }
  const __m512i index =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(int32_t(step)));
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, index, x, 4);
}

}  // namespace

void dw_row_avx512(int64_t n, const float* x, int64_t step, float w, float* acc) {
  const __m512 wv = _mm512_set1_ps(w);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t count = n - i < 16 ? n - i : 16;
    const __mmask16 m = tail_mask(count);
    const __m512 v = load_step(x + i * step, step, count);
    _mm512_mask_storeu_ps(acc + i, m, _mm512_fmadd_ps(wv, v, _mm512_maskz_loadu_ps(m, acc + i)));
  }
}

void dw_pixel_avx512(int64_t c, const float* const* taps, const float* const* weights, int ntaps,
                     int64_t npix, int64_t step, float* out) {
  int64_t px = 0;
  // Pixel pairs, 32 channels at a time: four independent FMA chains instead of two (one
  // pixel's 9 taps are a chain of 9 dependent FMAs per vector).
  for (; px + 2 <= npix && c >= 32; px += 2, out += 2 * c) {
    const int64_t o = px * step;
    int64_t j = 0;
    for (; j + 32 <= c; j += 32) {
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
      for (int t = 0; t < ntaps; ++t) {
        const float* x = taps[t] + o + j;
        const __m512 w0 = _mm512_loadu_ps(weights[t] + j),
                     w1 = _mm512_loadu_ps(weights[t] + j + 16);
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x), w0, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + 16), w1, a1);
        b0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + step), w0, b0);
        b1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + step + 16), w1, b1);
      }
      _mm512_storeu_ps(out + j, a0);
      _mm512_storeu_ps(out + j + 16, a1);
      _mm512_storeu_ps(out + c + j, b0);
      _mm512_storeu_ps(out + c + j + 16, b1);
    }
    for (; j < c; j += 16) {
      const __mmask16 m = tail_mask(c - j);
      __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
      for (int t = 0; t < ntaps; ++t) {
        const __m512 w = _mm512_maskz_loadu_ps(m, weights[t] + j);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, taps[t] + o + j), w, a);
        b = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, taps[t] + o + step + j), w, b);
      }
      _mm512_mask_storeu_ps(out + j, m, a);
      _mm512_mask_storeu_ps(out + c + j, m, b);
    }
  }
  for (; px < npix; ++px, out += c) {
    const int64_t o = px * step;
    int64_t j = 0;
    for (; j + 32 <= c; j += 32) {  // two independent chains
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      for (int t = 0; t < ntaps; ++t) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(taps[t] + o + j), _mm512_loadu_ps(weights[t] + j), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(taps[t] + o + j + 16),
                             _mm512_loadu_ps(weights[t] + j + 16), a1);
      }
      _mm512_storeu_ps(out + j, a0);
      _mm512_storeu_ps(out + j + 16, a1);
    }
    for (; j < c; j += 16) {
      const __mmask16 m = tail_mask(c - j);
      __m512 a = _mm512_setzero_ps();
      for (int t = 0; t < ntaps; ++t) {
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, taps[t] + o + j),
                            _mm512_maskz_loadu_ps(m, weights[t] + j), a);
      }
      _mm512_mask_storeu_ps(out + j, m, a);
    }
  }
}

namespace {
#include "kernels/depthwise/depthwise_impl.h"

constexpr int kMaxTaps = 64;  // larger kernels take the row path

#include "kernels/depthwise/columns_avx512.h"

}  // namespace

namespace {

// Output rows [oh0, oh0 + R) of one 16-column chunk of a 3-D depthwise output plane: R
// independent accumulators (one chain per output row is bound by the FMA latency), each
// summing its taps in (a, i, j) order from zero with masked FMAs. A kernel row i whose R input
// rows all lie inside the plane (the interior) runs without per-row checks.
template <int R, int kStride>
void volume_rows(const float* const* planes, int64_t kd, const float* wk, const DwPlaneShape& s,
                 const ColumnMasks* masks, int64_t ow0, int64_t oh0, __mmask16 store, float* y) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const int64_t row_step = s.stride_h * s.w;
  for (int64_t a = 0; a < kd; ++a) {
    const float* plane = planes[a];
    if (!plane) continue;
    for (int64_t i = 0; i < s.kh; ++i) {
      const int64_t ih0 = oh0 * s.stride_h - s.pad_top + i * s.dilation_h;
      // Where lane 0 of tap column 0 reads in row ih0. Masked-off lanes are never accessed, so
      // the address may lie before the row.
      const float* base = plane + ih0 * s.w + ow0 * kStride - s.pad_left;
      const float* wi = wk + (a * s.kh + i) * s.kw;
      const bool interior = ih0 >= 0 && ih0 + (R - 1) * s.stride_h < s.h;
      for (int64_t j = 0; j < s.kw; ++j) {
        const ColumnMasks& m = masks[j];
        if (!m.lanes) continue;
        const __m512 wv = _mm512_set1_ps(wi[j]);
        const float* col = base + j * s.dilation_w;
        for (int r = 0; r < R; ++r) {
          if (!interior) {
            const int64_t ih = ih0 + r * s.stride_h;
            if (ih < 0 || ih >= s.h) continue;
          }
          const __m512 v = load_columns(m, col + r * row_step, kStride);
          acc[r] = _mm512_mask3_fmadd_ps(wv, v, acc[r], m.lanes);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + (oh0 + r) * s.ow + ow0, store, acc[r]);
}

// The same R output rows of a 2-D plane with a KH x KW kernel, stride_h SH, dilation_h 1, and
// all (R - 1) * SH + KH input rows inside the plane: each input row is loaded once per kernel
// column and feeds every output row that reads it, so a 3x3 stride-1 chunk of 8 rows takes 30
// loads instead of 72 (stride 2: 51), with the weights held in registers. Output row r still
// sums in (i, j) order from zero: its input rows q = SH * r + i come in ascending q, each with
// j ascending. Measured against volume_rows on the interior blocks, interleaved in one process
// (1 thread, 32 planes of 112x112 and the same data as 56x56 and 28x28 planes): stride 1 1.87x,
// 1.38x, 1.48x; stride 2 (96 planes of 112x112 and the same data at 56x56) 1.71x, 1.21x.
template <int R, int KH, int KW, int SH, int kStride>
void plane_rows_reuse(const float* plane, const float* wk, const DwPlaneShape& s,
                      const ColumnMasks* masks, int64_t ow0, int64_t oh0, __mmask16 store,
                      float* y) {
  __m512 acc[R], wv[KH * KW];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int t = 0; t < KH * KW; ++t) wv[t] = _mm512_set1_ps(wk[t]);
  const float* base = plane + (oh0 * SH - s.pad_top) * s.w + ow0 * kStride - s.pad_left;
#pragma GCC unroll 32
  for (int q = 0; q < (R - 1) * SH + KH; ++q) {
    const float* row = base + q * s.w;
#pragma GCC unroll 8
    for (int j = 0; j < KW; ++j) {
      const ColumnMasks& m = masks[j];
      const __m512 v = load_columns(m, row + j * s.dilation_w, kStride);
#pragma GCC unroll 8
      for (int i = 0; i < KH; ++i) {
        const int r = (q - i) / SH;
        if (q < i || (q - i) % SH != 0 || r >= R) continue;
        acc[r] = _mm512_mask3_fmadd_ps(wv[i * KW + j], v, acc[r], m.lanes);
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + (oh0 + r) * s.ow + ow0, store, acc[r]);
}

template <int kStride>
void volume_chunks(const float* const* planes, int64_t kd, const float* wk, const DwPlaneShape& s,
                   float* y) {
  constexpr int kRows = 8, kReuseK = 3;
  // Where plane_rows_reuse serves an 8-row block starting at oh: 3x3, stride_h 1 or 2.
  const bool reuse = kd == 1 && planes[0] && s.kh == kReuseK && s.kw == kReuseK &&
                     (s.stride_h == 1 || s.stride_h == 2) && s.dilation_h == 1;
  auto inside = [&s](int64_t oh) {
    const int64_t first = oh * s.stride_h - s.pad_top;
    return first >= 0 && first + (kRows - 1) * s.stride_h + kReuseK - 1 < s.h;
  };
  for (int64_t ow0 = 0; ow0 < s.ow; ow0 += 16) {
    ColumnMasks masks[kMaxTaps];
    for (int64_t j = 0; j < s.kw; ++j) masks[j] = column_masks(s, ow0, j);
    const __mmask16 store = tail_mask(s.ow - ow0);
    int64_t oh = 0;
    for (; oh + kRows <= s.oh; oh += kRows) {
      if (reuse && inside(oh)) {
        (s.stride_h == 1 ? plane_rows_reuse<kRows, kReuseK, kReuseK, 1, kStride>
                         : plane_rows_reuse<kRows, kReuseK, kReuseK, 2, kStride>)(planes[0], wk, s,
                                                                                  masks, ow0, oh,
                                                                                  store, y);
      } else {
        volume_rows<kRows, kStride>(planes, kd, wk, s, masks, ow0, oh, store, y);
      }
    }
    for (; oh + 2 <= s.oh; oh += 2) {
      volume_rows<2, kStride>(planes, kd, wk, s, masks, ow0, oh, store, y);
    }
    for (; oh < s.oh; ++oh) volume_rows<1, kStride>(planes, kd, wk, s, masks, ow0, oh, store, y);
  }
}

}  // namespace

// Column chunks of 16 outputs, 8 output rows at a time (8 independent FMA chains); border masks
// worked out once per chunk. Strides 1 and 2; others use the row kernel.
void dw_volume_avx512(const float* const* planes, int64_t kd, const float* wk,
                      const DwPlaneShape& s, float* y) {
  if (s.stride_w > 2 || s.kw > kMaxTaps) {
    return volume_by_rows(planes, kd, wk, s, y, dw_row_avx512);
  }
  if (s.stride_w == 1) return volume_chunks<1>(planes, kd, wk, s, y);
  volume_chunks<2>(planes, kd, wk, s, y);
}

// A 2-D plane is a volume of depth 1 (the same arithmetic): 8 output rows at a time. One row
// at a time, the 9-tap FMA chain per 16 outputs made MobileNetV2's NCHW depthwise layers
// latency-bound at 5-9 GFLOP/s.
void dw_plane_avx512(const float* x, const float* wk, const DwPlaneShape& s, float* y) {
  dw_volume_avx512(&x, 1, wk, s, y);
}

}  // namespace cnnfast::kernels
