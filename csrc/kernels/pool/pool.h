// Pooling kernel contract: one kernel tap applied to a run of outputs. Channels-first drivers
// call it along an output row (input read at a stride, outputs contiguous); channels-last
// drivers call it across the channels of one pixel (both contiguous). One generic source
// (pool_impl.h) compiled per tier with that tier's flags, like the elementwise kernels.
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace cnnfast::kernels {

// Max of one tap: for i < n, with v = x[i*step]: if v > acc[i] or v is NaN (PyTorch's rule: NaN
// wins, and a later NaN takes the index), acc[i] = v and, when idx is not nullptr,
// idx[i] = pos + i*pos_step (the flat spatial position the value came from).
using PoolMaxFn = void (*)(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx,
                           int64_t pos, int64_t pos_step);

// Sum of one tap: acc[i] += f(x[i*step]) with f(v) = v (power == 0: average pooling), |v|
// (power == 1), v*v (power == 2) or |v|^power (Lp pooling).
using PoolSumFn = void (*)(int64_t n, const float* x, int64_t step, float power, float* acc);

// Reductions of one contiguous run into one output (adaptive and global pooling, channels
// first), over 16 lanes combined in a fixed order: *acc = max(*acc, x[0..n)) by the rule of
// PoolMaxFn (ties keep the earliest position, a NaN wins and the last NaN takes the index),
// with *idx = pos + i for the winner when idx is not nullptr; or *acc += sum of x[0..n).
using PoolReduceMaxFn = void (*)(int64_t n, const float* x, float* acc, int64_t* idx, int64_t pos);
using PoolReduceSumFn = void (*)(int64_t n, const float* x, float* acc);

// c outputs from their window's taps (each a pointer to c contiguous values: a channels-last
// pixel, or a whole row when the pooling reduces rows first), reduced in registers:
// out[j] = max over t of taps[t][j] (the PoolMaxFn rule, from -inf, idx[j] = pos[t] of the
// winner or `first`; idx may be nullptr, and then pos too), or
// out[j] = scale * sum over t of f(taps[t][j]) (f by power, as PoolSumFn).
using PoolTapsMaxFn = void (*)(int64_t c, const float* const* taps, const int64_t* pos, int ntaps,
                               float* out, int64_t* idx, int64_t first);
using PoolTapsSumFn = void (*)(int64_t c, const float* const* taps, int ntaps, float power,
                               float scale, float* out);

// One channels-first output row from an input row padded so that every tap lies inside v:
// out[j] = max over t < k of v[j*step + t*dilation] (the PoolMaxFn rule, from -inf) when
// is_max, else (sum over t, in t order, from 0) * col_scale[j]; j in [0, n).
// The taps stay in registers: one store per output.
using PoolRowFn = void (*)(int64_t n, const float* v, int64_t step, int64_t dilation, int k,
                           bool is_max, const float* col_scale, float* out);

// What a channels-first plane kernel needs, shared by every plane of a call. Output row o
// (o < out_rows) reduces the counts[o] input rows at offsets[o * max_rows + r] in the plane
// (in order), then output j of the row the k taps at positions start + j*step + t (t < k) of
// that reduced row; positions outside [0, in_w) are padding and skipped. Averages then
// multiply by scales[o][j].
struct PoolPlane {
  int64_t out_rows, out_w, in_w, start, step;
  int k;
  bool is_max;
  int max_rows;
  const int64_t* offsets;
  const int* counts;
  const float* const* scales;
};
// The plane's outputs from x to y, both reductions in registers (nothing stored but the
// outputs): a max by the PoolMaxFn rule, or a sum in row order and then tap order. Only for
// step 1 or 2 and k <= kPoolPlaneMaxTaps; nullptr on tiers without it.
using PoolPlaneFn = void (*)(const PoolPlane& plane, const float* x, float* y);
constexpr int kPoolPlaneMaxTaps = 7;

// A stride-1 plane whose output has the input's size (odd k <= kPoolPlaneMaxTaps, k / 2
// padding on every side, dilation 1), seen as one flat row of h*w positions: window row r of
// output position q reads input position q + (r - k/2)*w, and tap t of the reduced row is its
// position q + t - k/2. The padding is masks, worked out once per call (bit L = lane L):
// row_masks[v*k + r] holds the lanes of reduced vector v (positions 16v - k/2 ..) whose row r
// lies inside the plane (top and bottom), tap_masks[i*k + t] the lanes of output vector i
// (positions 16i ..) whose tap t lies inside their row (left and right) and below h*w.
// Reductions as PoolPlaneFn's: rows in order, then taps in order; averages times scales[q].
struct PoolFlat {
  int64_t h, w;
  int k;
  bool is_max;
  const uint16_t* row_masks;
  const uint16_t* tap_masks;
  const float* scales;
};
// Masks for reduced vectors 0 .. pool_flat_vectors(h*w) - 1 and output vectors 0 ..
// (h*w + 15) / 16 - 1.
inline int64_t pool_flat_vectors(int64_t hw) { return (hw + 15) / 16 + 1; }
using PoolFlatFn = void (*)(const PoolFlat& flat, const float* x, float* y);

// Channels-first planes' adaptive pooling (2-D or 1-D) with rows of at most 16 values and at
// most 16 outputs per row, `planes` planes of in_h x in_w (out_h x out_w) back to back: output
// row oh of a plane reduces the input rows [row_begin[oh], row_end[oh]) in order into one
// vector, then output ow its taps t < taps at lanes index[t*16 + ow], for the lanes of
// tap_masks[t] (bins differ in width by one; tap 0 is in every bin): in tap order, by the
// PoolMaxFn rule or summed, averages times scales[oh*out_w + ow].
struct PoolAdaptiveRows {
  int64_t in_h, in_w, out_h, out_w;
  bool is_max;
  int taps;
  const int64_t* row_begin;
  const int64_t* row_end;
  const int32_t* index;
  const uint16_t* tap_masks;
  const float* scales;
};
using PoolAdaptiveRowsFn = void (*)(const PoolAdaptiveRows& rows, int64_t planes, const float* x,
                                    float* y);

// One channels-last output row: pixel j (j < out_w) of c channels from the `nrows` window rows
// (pixels of c floats each) and its w taps, the pixels [begin[j], end[j]) of those rows: per
// tap the rows reduced in order, then the taps in order (the rows-first order, without a
// reduced row in memory); averages times scales[j]. A window with no tap or no row gives the
// fill (-inf, or 0). nullptr on tiers without it.
using PoolRowLastFn = void (*)(int64_t c, const float* const* rows, int nrows, int64_t out_w,
                               const int64_t* begin, const int64_t* end, bool is_max,
                               const float* scales, float* out);

// out[i] = max (the PoolMaxFn rule) or sum of the `len` contiguous values x[i*len ..] for
// i < planes: global pooling of channels-first planes (len <= 4096, so float sums stay exact
// enough), 16 planes at a time in the avx512 tier. The lanes of each plane combine in a fixed
// order, whatever `planes` and the thread count. nullptr on tiers without it.
using PoolReducePlanesFn = void (*)(int64_t planes, int64_t len, const float* x, bool is_max,
                                    float* out);

struct PoolKernel {
  const char* name;
  Isa isa;
  PoolMaxFn max;
  PoolSumFn sum;
  PoolReduceMaxFn reduce_max;
  PoolReduceSumFn reduce_sum;
  PoolTapsMaxFn taps_max;
  PoolTapsSumFn taps_sum;
  PoolRowFn row;
  PoolPlaneFn plane;
  PoolFlatFn flat;
  PoolAdaptiveRowsFn adaptive_rows;
  PoolRowLastFn row_last;
  PoolReducePlanesFn reduce_planes;
};

#define CNNFAST_DECLARE_POOL(tier)                                                               \
  void pool_max_##tier(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx,        \
                       int64_t pos, int64_t pos_step);                                           \
  void pool_sum_##tier(int64_t n, const float* x, int64_t step, float power, float* acc);        \
  void pool_reduce_max_##tier(int64_t n, const float* x, float* acc, int64_t* idx, int64_t pos); \
  void pool_reduce_sum_##tier(int64_t n, const float* x, float* acc);                            \
  void pool_taps_max_##tier(int64_t c, const float* const* taps, const int64_t* pos, int ntaps,  \
                            float* out, int64_t* idx, int64_t first);                            \
  void pool_taps_sum_##tier(int64_t c, const float* const* taps, int ntaps, float power,         \
                            float scale, float* out);                                            \
  void pool_row_##tier(int64_t n, const float* v, int64_t step, int64_t dilation, int k,         \
                       bool is_max, const float* col_scale, float* out);

CNNFAST_DECLARE_POOL(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_POOL(avx2)
CNNFAST_DECLARE_POOL(avx512)
void pool_plane_avx512(const PoolPlane& plane, const float* x, float* y);
void pool_flat_avx512(const PoolFlat& flat, const float* x, float* y);
void pool_adaptive_rows_avx512(const PoolAdaptiveRows& rows, int64_t planes, const float* x,
                               float* y);
void pool_reduce_planes_avx512(int64_t planes, int64_t len, const float* x, bool is_max,
                               float* out);
void pool_row_last_avx512(int64_t c, const float* const* rows, int nrows, int64_t out_w,
                          const int64_t* begin, const int64_t* end, bool is_max,
                          const float* scales, float* out);
#endif
#undef CNNFAST_DECLARE_POOL

}  // namespace cnnfast::kernels
