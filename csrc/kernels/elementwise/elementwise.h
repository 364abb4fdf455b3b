// Elementwise kernel contract: per-channel scale + shift + activation (batch norm, standalone
// activations, the GEMM driver's exp-based epilogues) and the moments batch norm's training
// statistics are built from. One generic source (elementwise_impl.h) compiled once per tier with
// that tier's flags; the loops are written lane-parallel so the compiler vectorises them without
// reassociating any sum (results do not depend on how a caller splits the work).
#pragma once

#include <cstdint>

#include "core/isa.h"
#include "kernels/gemm/gemm.h"

namespace cnnfast::kernels {

// One channel's affine map y = ((x - hi) - lo) * scale + shift. The centre hi + lo is a float
// pair (the mean split into its float and the float remainder): x - hi is exact for x near the
// mean, so data with a large mean and a small spread keep their digits (x * scale + shift
// with scale ~ 1/std would cancel them).
struct ChannelAffine {
  float hi, lo, scale, shift;
};

// y[i] = act(affine(x[i])) for i < n (one NCHW channel plane). x may equal y.
using ScaleShiftFn = void (*)(int64_t n, const float* x, ChannelAffine a, Activation act,
                              float alpha, float* y);

// y[p*c + j] = act(affine[j](x[p*c + j])) for p < rows, j < c (channels-last rows), with the
// per-channel maps as four arrays of c (hi, lo, scale, shift). x may equal y.
using ScaleShiftRowsFn = void (*)(int64_t rows, int64_t c, const float* x, const float* hi,
                                  const float* lo, const float* scale, const float* shift,
                                  Activation act, float alpha, float* y);

// Moments of x[0:n] (n >= 1), two passes over x shifted by x[0] (which cancels the large common
// part exactly): *mean and *m2 = sum (x[i] - mean)^2. Callers keep n small enough (a few
// thousand) for float lane sums and combine blocks in double.
using MomentsFn = void (*)(int64_t n, const float* x, double* mean, double* m2);

// The same per column j < c of `rows` rows (row p at x + p*ld), shifted by row 0: writes
// dmean[j] = mean_j - x[j] and m2[j].
using MomentsRowsFn = void (*)(int64_t rows, int64_t c, int64_t ld, const float* x, float* dmean,
                               float* m2);

// dst[j*dst_ld + i] = src[i*src_ld + j] for i < rows, j < cols: a tile of a matrix transpose
// (layout changes between NCHW and NHWC).
using TransposeFn = void (*)(int64_t rows, int64_t cols, const float* src, int64_t src_ld,
                             float* dst, int64_t dst_ld);

struct ElementwiseKernel {
  const char* name;
  Isa isa;
  ScaleShiftFn scale_shift;
  ScaleShiftRowsFn scale_shift_rows;
  MomentsFn moments;
  MomentsRowsFn moments_rows;
  TransposeFn transpose;
};

#define CNNFAST_DECLARE_ELEMENTWISE(tier)                                                          \
  void scale_shift_##tier(int64_t n, const float* x, ChannelAffine a, Activation act, float alpha, \
                          float* y);                                                               \
  void scale_shift_rows_##tier(int64_t rows, int64_t c, const float* x, const float* hi,           \
                               const float* lo, const float* scale, const float* shift,            \
                               Activation act, float alpha, float* y);                             \
  void moments_##tier(int64_t n, const float* x, double* mean, double* m2);                        \
  void moments_rows_##tier(int64_t rows, int64_t c, int64_t ld, const float* x, float* dmean,      \
                           float* m2);                                                             \
  void transpose_##tier(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst,  \
                        int64_t dst_ld);

CNNFAST_DECLARE_ELEMENTWISE(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_ELEMENTWISE(avx2)
CNNFAST_DECLARE_ELEMENTWISE(avx512)
#endif
#undef CNNFAST_DECLARE_ELEMENTWISE

}  // namespace cnnfast::kernels
