// Depthwise kernels, AVX-512 tier: 16 lanes, fused multiply-add in both kernels, masked tails.
#include <immintrin.h>

#include <climits>
#include <cstdint>

#include "kernels/depthwise/depthwise.h"

namespace cnnfast::kernels {
namespace {

// The most taps a pixel call takes through the grid path (it shifts a copy of the pointers).
constexpr int kMaxPixelTaps = 25;

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

namespace {

// P output pixels (p0, p0 + P) of a grid run (DwPixelFn with kw = KW), 16 channels from j0
// (lanes of m): per kernel row, the row's KW weight vectors are loaded once and each input pixel
// once, feeding every output among the P that reads it (3x3 stride 1, P = 8: 30 loads for 72
// FMAs, against 54 loads for 36 FMAs per pixel pair taking each tap separately). Output p
// still sums its taps in (row, j) order from zero: within a row its input pixels u = p*S + j*D
// come in ascending u.
template <int KW, int S, int D, int P>
inline __attribute__((always_inline)) void grid_pixels(int64_t c, int64_t j0, __mmask16 m,
                                                       const float* const* taps,
                                                       const float* const* weights, int rows,
                                                       int64_t p0, float* out) {
  __m512 acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();
  for (int r = 0; r < rows; ++r) {
    const float* x = taps[r * KW] + p0 * S * c + j0;
    const float* wr = weights[r * KW] + j0;
    __m512 w[KW];
    for (int j = 0; j < KW; ++j) w[j] = _mm512_maskz_loadu_ps(m, wr + j * c);
#pragma GCC unroll 32
    for (int u = 0; u < (P - 1) * S + (KW - 1) * D + 1; ++u) {
      const __m512 v = _mm512_maskz_loadu_ps(m, x + u * c);
#pragma GCC unroll 8
      for (int j = 0; j < KW; ++j) {
        const int p = (u - j * D) / S;
        if (u < j * D || (u - j * D) % S != 0 || p >= P) continue;
        acc[p] = _mm512_fmadd_ps(v, w[j], acc[p]);
      }
    }
  }
  for (int p = 0; p < P; ++p) _mm512_mask_storeu_ps(out + (p0 + p) * c + j0, m, acc[p]);
}

// The grid run's pixels in blocks of 8 then 4; returns how many it computed.
template <int KW, int S, int D>
int64_t grid_run(int64_t c, const float* const* taps, const float* const* weights, int rows,
                 int64_t npix, float* out) {
  int64_t p0 = 0;
  for (; p0 + 8 <= npix; p0 += 8) {
    for (int64_t j0 = 0; j0 < c; j0 += 16) {
      grid_pixels<KW, S, D, 8>(c, j0, tail_mask(c - j0), taps, weights, rows, p0, out);
    }
  }
  for (; p0 + 4 <= npix; p0 += 4) {
    for (int64_t j0 = 0; j0 < c; j0 += 16) {
      grid_pixels<KW, S, D, 4>(c, j0, tail_mask(c - j0), taps, weights, rows, p0, out);
    }
  }
  return p0;
}

// The grid_run instance for a kw x (stride, dilation) in channel units, or nullptr.
using GridRunFn = int64_t (*)(int64_t, const float* const*, const float* const*, int, int64_t,
                              float*);
GridRunFn grid_run_for(int kw, int64_t stride, int64_t dilation) {
  if (kw == 3 && stride == 1 && dilation == 1) return grid_run<3, 1, 1>;
  if (kw == 3 && stride == 2 && dilation == 1) return grid_run<3, 2, 1>;
  if (kw == 3 && stride == 1 && dilation == 2) return grid_run<3, 1, 2>;
  if (kw == 5 && stride == 1 && dilation == 1) return grid_run<5, 1, 1>;
  if (kw == 5 && stride == 2 && dilation == 1) return grid_run<5, 2, 1>;
  return nullptr;
}

}  // namespace

void dw_pixel_avx512(int64_t c, const float* const* taps, const float* const* weights, int ntaps,
                     int64_t npix, int64_t step, int kw, int64_t col_step, float* out) {
  if (kw > 0 && npix >= 4 && ntaps <= kMaxPixelTaps && ntaps % kw == 0 && step % c == 0 &&
      col_step % c == 0) {
    if (const GridRunFn run = grid_run_for(kw, step / c, col_step / c)) {
      const int64_t done = run(c, taps, weights, ntaps / kw, npix, out);
      if (done == npix) return;
      // The rest pixel by pixel below, from pixel `done`.
      const float* shifted[kMaxPixelTaps];
      for (int t = 0; t < ntaps; ++t) shifted[t] = taps[t] + done * step;
      return dw_pixel_avx512(c, shifted, weights, ntaps, npix - done, step, 0, 0, out + done * c);
    }
  }
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

// One output plane's epilogue (DwEpilogue), fused into the stores: act(fma(y, scale, shift)),
// the arithmetic of the elementwise scale_shift and its activations (NaN and -0 kept).
struct Finish {
  bool on;
  Activation act;
  __m512 scale, shift, alpha;
};

constexpr Finish kNoFinish{false, Activation::none, {}, {}, {}};

Finish finish_for(const DwEpilogue* ep, int64_t q) {
  if (!ep) return kNoFinish;
  return {true, ep->act, _mm512_set1_ps(ep->scale ? ep->scale[q] : 1.0f),
          _mm512_set1_ps(ep->shift ? ep->shift[q] : 0.0f), _mm512_set1_ps(ep->alpha)};
}

// The activations a store applies; the exp-based ones stay the caller's pass.
bool fusable(Activation act) {
  return act == Activation::none || act == Activation::relu || act == Activation::relu6 ||
         act == Activation::leaky_relu;
}

inline __m512 finish(__m512 v, const Finish& f) {
  if (!f.on) return v;
  v = _mm512_fmadd_ps(v, f.scale, f.shift);
  const __m512 zero = _mm512_setzero_ps();
  switch (f.act) {
    case Activation::relu:  // v < 0 ? 0 : v
      return _mm512_max_ps(zero, v);
    case Activation::relu6:  // v < 0 ? 0 : (v > 6 ? 6 : v)
      return _mm512_max_ps(zero, _mm512_min_ps(_mm512_set1_ps(6.0f), v));
    case Activation::leaky_relu:  // v < 0 ? v * alpha : v
      return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, f.alpha);
    default:
      return v;
  }
}

// The same R output rows of a 2-D plane with a KH x KW kernel, stride SH on both axes and
// dilation_h DH: each input row is loaded once per kernel column and feeds every output row
// that reads it, so a 3x3 stride-1 chunk of 8 rows takes 30 loads instead of 72 (stride 2: 51),
// with the weights held in registers. Output row r still sums in (i, j) order from zero: its
// input rows q = SH * r + DH * i come in ascending q, each with j ascending. Measured against
// volume_rows on the interior blocks, interleaved in one process (1 thread, 32 planes of
// 112x112 and the same data as 56x56 and 28x28 planes): stride 1 1.87x, 1.38x, 1.48x; stride 2
// (96 planes of 112x112 and the same data at 56x56) 1.71x, 1.21x. The border and tail blocks
// ran volume_rows until they came here too, and took more time than the interior blocks (perf,
// 144@56x56: 42 % against 31 %).
//
// kInterior: all the input rows lie inside the plane. Otherwise a row outside it reads a row of
// zeros instead, which adds exactly nothing to the sums when every weight is finite (the caller
// makes sure): per-row masks on every load and FMA made the border blocks 2x slower than the
// interior ones (mask moves, perf), and a branch per row kept the accumulators on the stack.
alignas(64) const float kZeroRow[64] = {};

template <int R, int KH, int KW, int SH, int DH, bool kInterior>
void rows_reuse(const float* plane, const float* wk, const DwPlaneShape& s,
                const ColumnMasks* masks, int64_t ow0, int64_t oh0, __mmask16 store,
                const Finish& f, float* y) {
  __m512 acc[R], wv[KH * KW];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int t = 0; t < KH * KW; ++t) wv[t] = _mm512_set1_ps(wk[t]);
  constexpr int kInputRows = (R - 1) * SH + (KH - 1) * DH + 1;
  const int64_t ih0 = oh0 * SH - s.pad_top;
  const float* base = plane + ih0 * s.w + ow0 * SH - s.pad_left;
  // Input row q and the step between its kernel columns: the zero row, read from its start for
  // every column (at most 16 * SH floats), where q lies outside the plane. Chosen before the
  // taps: a choice inside them became branches around duplicated FMAs and a stack copy of the
  // accumulators (perf: rep stos, 19 % of the block).
  const float* rows[kInputRows];
  int64_t column_step[kInputRows];
  if constexpr (!kInterior) {
    for (int q = 0; q < kInputRows; ++q) {
      const bool inside = uint64_t(ih0 + q) < uint64_t(s.h);
      rows[q] = inside ? base + q * s.w : kZeroRow;
      column_step[q] = inside ? s.dilation_w : 0;
    }
  }
#pragma GCC unroll 32
  for (int q = 0; q < kInputRows; ++q) {
#pragma GCC unroll 8
    for (int j = 0; j < KW; ++j) {
      const ColumnMasks& m = masks[j];
      const __m512 v = kInterior ? load_columns(m, base + q * s.w + j * s.dilation_w, SH)
                                 : load_columns(m, rows[q] + j * column_step[q], SH);
#pragma GCC unroll 8
      for (int i = 0; i < KH; ++i) {
        const int r = (q - DH * i) / SH;
        if (q < DH * i || (q - DH * i) % SH != 0 || r >= R) continue;
        acc[r] = _mm512_mask3_fmadd_ps(wv[i * KW + j], v, acc[r], m.lanes);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(y + (oh0 + r) * s.ow + ow0, store, finish(acc[r], f));
  }
}

using RowsFn = void (*)(const float*, const float*, const DwPlaneShape&, const ColumnMasks*,
                        int64_t, int64_t, __mmask16, const Finish&, float*);

// rows_reuse for one kernel size K, stride S and dilation_h D: blocks of kRows output rows (8
// FMA chains in flight; a 5x5 kernel's 25 weights leave registers for 4), then 4, 2 and 1 rows.
struct ReuseBlocks {
  int rows;         // kRows
  RowsFn interior;  // kRows rows, kInterior
  RowsFn edge[4];   // kRows, 4, 2, 1 rows, zero rows outside the plane
};

template <int K, int S, int D>
constexpr ReuseBlocks reuse_for() {
  constexpr int kRows = K * K + 8 <= 30 ? 8 : 4;
  return {kRows,
          rows_reuse<kRows, K, K, S, D, true>,
          {rows_reuse<kRows, K, K, S, D, false>, rows_reuse<4, K, K, S, D, false>,
           rows_reuse<2, K, K, S, D, false>, rows_reuse<1, K, K, S, D, false>}};
}

// The rows_reuse instances for s (kernel 3x3 or 5x5, equal strides 1 or 2, dilation_h 1, or 2 at
// stride 1), or nullptr for volume_rows.
const ReuseBlocks* reuse_blocks(const DwPlaneShape& s) {
  static constexpr ReuseBlocks k3s1 = reuse_for<3, 1, 1>(), k3s2 = reuse_for<3, 2, 1>(),
                               k3d2 = reuse_for<3, 1, 2>(), k5s1 = reuse_for<5, 1, 1>(),
                               k5s2 = reuse_for<5, 2, 1>(), k5d2 = reuse_for<5, 1, 2>();
  if (s.kh != s.kw || s.stride_h != s.stride_w) return nullptr;
  const int64_t k = s.kh, st = s.stride_h, d = s.dilation_h;
  if (st == 1 && d == 1) return k == 3 ? &k3s1 : k == 5 ? &k5s1 : nullptr;
  if (st == 2 && d == 1) return k == 3 ? &k3s2 : k == 5 ? &k5s2 : nullptr;
  if (st == 1 && d == 2) return k == 3 ? &k3d2 : k == 5 ? &k5d2 : nullptr;
  return nullptr;
}

// Output rows [oh, oh + rows) of a chunk of a 2-D plane through the reuse blocks: the interior
// form where the rows' inputs all lie in the plane, the zero-row form elsewhere.
void reuse_rows(const ReuseBlocks& b, const float* plane, const float* wk, const DwPlaneShape& s,
                const ColumnMasks* masks, int64_t ow0, __mmask16 store, const Finish& f, float* y) {
  int64_t oh = 0;
  for (; oh + b.rows <= s.oh; oh += b.rows) {
    const int64_t first = oh * s.stride_h - s.pad_top;
    const int64_t last = first + (b.rows - 1) * s.stride_h + (s.kh - 1) * s.dilation_h;
    const bool interior = first >= 0 && last < s.h;
    (interior ? b.interior : b.edge[0])(plane, wk, s, masks, ow0, oh, store, f, y);
  }
  for (int e = 1, rows = 4; e < 4; ++e, rows /= 2) {
    for (; oh + rows <= s.oh; oh += rows) b.edge[e](plane, wk, s, masks, ow0, oh, store, f, y);
  }
}

// Whether a 2-D plane with these weights runs the reuse blocks (which apply a Finish).
bool reuses_rows(const DwPlaneShape& s, const float* wk, int64_t planes) {
  // rows_reuse's zero rows need finite weights (an infinite weight times a zero is NaN).
  bool finite = true;
  for (int64_t t = 0; t < planes * s.kh * s.kw; ++t) finite = finite && __builtin_isfinite(wk[t]);
  return finite && s.stride_w <= 2 && s.kw <= kMaxTaps && reuse_blocks(s);
}

// f applies only where the plane runs the reuse blocks (reuses_rows).
template <int kStride>
void volume_chunks(const float* const* planes, int64_t kd, const float* wk, const DwPlaneShape& s,
                   const Finish& f, float* y) {
  // Depth slices (kd > 1) each feed every output row, so only 2-D planes reuse rows.
  const ReuseBlocks* reuse =
      kd == 1 && planes[0] && reuses_rows(s, wk, 1) ? reuse_blocks(s) : nullptr;
  for (int64_t ow0 = 0; ow0 < s.ow; ow0 += 16) {
    ColumnMasks masks[kMaxTaps];
    for (int64_t j = 0; j < s.kw; ++j) masks[j] = column_masks(s, ow0, j);
    const __mmask16 store = tail_mask(s.ow - ow0);
    if (reuse) {
      reuse_rows(*reuse, planes[0], wk, s, masks, ow0, store, f, y);
      continue;
    }
    int64_t oh = 0;
    for (; oh + 8 <= s.oh; oh += 8) {
      volume_rows<8, kStride>(planes, kd, wk, s, masks, ow0, oh, store, y);
    }
    for (; oh + 2 <= s.oh; oh += 2) {
      volume_rows<2, kStride>(planes, kd, wk, s, masks, ow0, oh, store, y);
    }
    for (; oh < s.oh; ++oh) volume_rows<1, kStride>(planes, kd, wk, s, masks, ow0, oh, store, y);
  }
}

// Column chunks of 16 outputs, 8 output rows at a time (8 independent FMA chains); border masks
// worked out once per chunk. Strides 1 and 2; others use the row kernel. f as volume_chunks.
void volume(const float* const* planes, int64_t kd, const float* wk, const DwPlaneShape& s,
            const Finish& f, float* y) {
  if (s.stride_w > 2 || s.kw > kMaxTaps) {
    return volume_by_rows(planes, kd, wk, s, y, dw_row_avx512);
  }
  if (s.stride_w == 1) return volume_chunks<1>(planes, kd, wk, s, f, y);
  volume_chunks<2>(planes, kd, wk, s, f, y);
}

}  // namespace

void dw_volume_avx512(const float* const* planes, int64_t kd, const float* wk,
                      const DwPlaneShape& s, float* y) {
  volume(planes, kd, wk, s, kNoFinish, y);
}

namespace {

// Small stride-1 planes whose output rows are as wide as the input rows (ow == w, oh == h: the
// "same" padding) as flat vectors: output o = oh*w + ow reads input o + offset[t] for tap t, a
// constant, so 16 consecutive outputs of any rows are one masked load and one masked FMA per
// tap. The masks (lanes whose tap lies inside the plane: the columns that would wrap into a
// neighbouring row, and the rows beyond the plane) depend only on the shape and are worked out
// once per run of planes. A 14x14 plane is 13 vectors (94 % of the lanes busy) where 16-lane row
// chunks use 14 of 16 and split into 8-, 4- and 2-row blocks; a 7x7 plane is 4 vectors, where
// row chunks would leave 9 of 16 lanes idle.
constexpr int kFlatVectors = int(kFlatMaxPixels / 16), kFlatTaps = int(kFlatMaxTaps);

// Vectors [v0, v0 + G) of one plane (G <= 8, so a 14x14 plane is 8 + 5), each summing its taps
// in (i, j) order from zero.
template <int G>
void flat_vectors(const float* x, const float* wk, int taps, const int64_t* offset,
                  const __mmask16* masks, int v0, __mmask16 last, const Finish& f, float* y) {
  __m512 acc[G];
  for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_ps();
  // taps >= 1; as a do-while GCC keeps the accumulators in registers (a for loop, which may run
  // no times, made GCC 12 store each one to the stack after every FMA, with 13 or with 4).
  int t = 0;
  do {
    const __m512 w = _mm512_set1_ps(wk[t]);
    const float* src = x + offset[t] + 16 * v0;
    const __mmask16* m = masks + t * kFlatVectors + v0;
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      acc[g] = _mm512_mask3_fmadd_ps(w, _mm512_maskz_loadu_ps(m[g], src + 16 * g), acc[g], m[g]);
    }
  } while (++t < taps);
  for (int g = 0; g < G; ++g) {
    _mm512_mask_storeu_ps(y + 16 * (v0 + g), g + 1 < G ? __mmask16(0xffff) : last,
                          finish(acc[g], f));
  }
}

using FlatVectorsFn = void (*)(const float*, const float*, int, const int64_t*, const __mmask16*,
                               int, __mmask16, const Finish&, float*);
constexpr FlatVectorsFn kFlatVectorsFns[8] = {flat_vectors<1>, flat_vectors<2>, flat_vectors<3>,
                                              flat_vectors<4>, flat_vectors<5>, flat_vectors<6>,
                                              flat_vectors<7>, flat_vectors<8>};

void flat(const float* x, const float* wk, const DwPlaneShape& s, int64_t first, int64_t count,
          int64_t mult, const DwEpilogue* ep, float* y) {
  const int64_t n = s.h * s.w;
  const int vectors = int((n + 15) / 16);
  // Each output's row and column, then per vector the lanes whose kernel row i / column j reads
  // inside the plane; a tap's mask is the AND of the two (a few hundred vector operations per
  // run of planes, not a loop over every output and tap).
  alignas(64) int32_t row_of[16 * kFlatVectors], col_of[16 * kFlatVectors];
  for (int32_t o = 0, r = 0, c = 0; o < 16 * vectors; ++o) {  // no division per output
    row_of[o] = r;
    col_of[o] = c;
    if (++c == s.w) c = 0, ++r;
  }
  const auto inside = [](__m512i v, int64_t shift, int64_t size) {
    const __m512i p = _mm512_add_epi32(v, _mm512_set1_epi32(int32_t(shift)));
    return __mmask16(_mm512_cmpge_epi32_mask(p, _mm512_setzero_si512()) &
                     _mm512_cmplt_epi32_mask(p, _mm512_set1_epi32(int32_t(size))));
  };
  int64_t offset[kFlatTaps];
  __mmask16 masks[kFlatTaps * kFlatVectors] = {};
  for (int v = 0; v < vectors; ++v) {
    const __m512i rows = _mm512_load_si512(row_of + 16 * v);
    const __m512i cols = _mm512_load_si512(col_of + 16 * v);
    const __mmask16 outputs = tail_mask(n - 16 * v);
    for (int64_t i = 0; i < s.kh; ++i) {
      const int64_t dy = i * s.dilation_h - s.pad_top;
      const __mmask16 in_rows = outputs & inside(rows, dy, s.h);
      for (int64_t j = 0; j < s.kw; ++j) {
        const int64_t dx = j * s.dilation_w - s.pad_left, t = i * s.kw + j;
        offset[t] = dy * s.w + dx;
        masks[t * kFlatVectors + v] = in_rows & inside(cols, dx, s.w);
      }
    }
  }
  const int taps = int(s.kh * s.kw);
  for (int64_t q = 0; q < count; ++q) {
    const float* xq = x + (first + q) / mult * n;
    const Finish f = finish_for(ep, q);
    for (int v0 = 0; v0 < vectors; v0 += 8) {
      const int g = vectors - v0 < 8 ? vectors - v0 : 8;
      const __mmask16 last =
          v0 + g < vectors ? __mmask16(0xffff) : tail_mask(n - 16 * (v0 + g - 1));
      kFlatVectorsFns[g - 1](xq, wk + q * taps, taps, offset, masks, v0, last, f, y + q * n);
    }
  }
}

}  // namespace

// Small "same"-padded stride-1 planes as flat vectors (above); other planes as volumes of depth
// 1 (the same arithmetic): 8 output rows at a time. One row at a time, the 9-tap FMA chain per
// 16 outputs made MobileNetV2's NCHW depthwise layers latency-bound at 5-9 GFLOP/s. The
// epilogue goes into the stores where every plane of the run takes the flat or reuse blocks and
// the activation needs no exp (the separate pass over each plane took 8-12 % of a 576@14x14 or
// 960@7x7 layer, perf).
bool dw_plane_avx512(const float* x, const float* wk, const DwPlaneShape& s, int64_t first,
                     int64_t count, int64_t mult, const DwEpilogue* ep, float* y) {
  const bool flat_planes = dw_flat_fits(s);
  const bool fuse = ep && fusable(ep->act) && (flat_planes || reuses_rows(s, wk, count));
  const DwEpilogue* fused = fuse ? ep : nullptr;
  if (flat_planes) {
    flat(x, wk, s, first, count, mult, fused, y);
    return fuse || !ep;
  }
  for (int64_t q = 0; q < count; ++q) {
    const float* xq = x + (first + q) / mult * s.h * s.w;
    const float* wq = wk + q * s.kh * s.kw;
    float* yq = y + q * s.oh * s.ow;
    volume(&xq, 1, wq, s, finish_for(fused, q), yq);
  }
  return fuse || !ep;
}

}  // namespace cnnfast::kernels
