// Depthwise convolution kernel contract: the two inner loops of conv2d's direct "depthwise"
// algorithm (ops/conv2d_depthwise.cpp). Each output sums its taps from zero in tap order, with
// the same arithmetic in both kernels of a tier (fused multiply-add on AVX2/AVX-512, multiply
// then add on scalar), so NCHW and NHWC results stay bitwise equal.
#pragma once

#include <cstdint>

#include "core/isa.h"
#include "kernels/gemm/gemm.h"

namespace cnnfast::kernels {

// NCHW, one tap along an output row: acc[i] = w * x[i*step] + acc[i] for i < n.
using DwRowFn = void (*)(int64_t n, const float* x, int64_t step, float w, float* acc);

// NHWC, npix output pixels of one row, channel multiplier 1: out[p*c + j] = sum over t < ntaps
// (in order, from 0) of taps[t][p*step + j] * weights[t][j] for p < npix, j < c; each sum is
// kept in registers and stored once. A run of interior pixels (the same taps, step = stride *
// C_in apart) is one call: per pixel, setting up the tap pointers cost as much as the taps of
// a 32-channel layer.
// kw > 0 describes the taps as a grid the kernel may exploit: ntaps / kw kernel rows of kw
// taps, taps[r*kw + j] = taps[r*kw] + j*col_step and weights[r*kw + j] = weights[r*kw] + j*c.
// kw = 0: no such structure.
using DwPixelFn = void (*)(int64_t c, const float* const* taps, const float* const* weights,
                           int ntaps, int64_t npix, int64_t step, int kw, int64_t col_step,
                           float* out);

// The window geometry of one NCHW plane (input h x w, output oh x ow).
struct DwPlaneShape {
  int64_t h, w, oh, ow, kh, kw, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
};

// Planes the AVX-512 DwPlaneFn computes as flat vectors (depthwise_avx512.cpp): stride 1, output
// as large as the input ("same" padding), at most 256 pixels and 25 taps. Output rows narrower
// than 16 lanes cost it nothing extra, so conv2d runs such NCHW planes directly.
constexpr int64_t kFlatMaxPixels = 256, kFlatMaxTaps = 25;
inline bool dw_flat_fits(const DwPlaneShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.oh == s.h && s.ow == s.w &&
         s.h * s.w <= kFlatMaxPixels && s.kh * s.kw <= kFlatMaxTaps;
}

// The per-channel epilogue of a run of planes: plane q's outputs become
// act(fma(y, scale[q], shift[q])) (scale nullptr: 1, shift nullptr: 0), as the elementwise
// scale_shift computes x * scale + shift (contracted to one FMA on the AVX2/AVX-512 tiers).
struct DwEpilogue {
  const float* scale;
  const float* shift;
  Activation act;
  float alpha;
};

// NCHW, the output planes first + q (q < count) of one image, each a whole channel plane:
// y[q][oh][ow] (planes oh*ow apart) = the sum over the taps (i, j) inside the image, in (i, j)
// order from zero, of wk[q*kh*kw + i*kw + j] * x[(first + q) / mult][ih][iw] (x: the image's
// input planes, h*w apart; mult: the channel multiplier). The same arithmetic as DwRowFn. Whole
// planes per call: the row kernel's per-call cost dominated small planes, and a run of planes
// shares the border masks. Returns whether it also applied *ep (true when ep is nullptr); if
// not, the caller applies it (a kernel may fuse it into its stores, saving a pass).
using DwPlaneFn = bool (*)(const float* x, const float* wk, const DwPlaneShape& s, int64_t first,
                           int64_t count, int64_t mult, const DwEpilogue* ep, float* y);

// NCDHW, one output plane (image, channel, od) of a 3-D depthwise convolution: y[oh][ow] = the
// sum over the depth taps a < kd whose input plane planes[a] is not nullptr (nullptr: the tap
// falls in the depth padding), then the (i, j) inside the plane, in (a, i, j) order from zero, of
// wk[(a*kh + i)*kw + j] * planes[a][ih][iw]; s describes one plane. With kd = 1 the same
// arithmetic as DwPlaneFn. Called by ops/conv3d_depthwise.cpp.
using DwVolumeFn = void (*)(const float* const* planes, int64_t kd, const float* wk,
                            const DwPlaneShape& s, float* y);

struct DepthwiseKernel {
  const char* name;
  Isa isa;
  DwRowFn row;
  DwPixelFn pixel;
  DwPlaneFn plane;
  DwVolumeFn volume;
};

#define CNNFAST_DECLARE_DEPTHWISE(tier)                                                       \
  void dw_row_##tier(int64_t n, const float* x, int64_t step, float w, float* acc);           \
  void dw_pixel_##tier(int64_t c, const float* const* taps, const float* const* weights,      \
                       int ntaps, int64_t npix, int64_t step, int kw, int64_t col_step,       \
                       float* out);                                                           \
  bool dw_plane_##tier(const float* x, const float* wk, const DwPlaneShape& s, int64_t first, \
                       int64_t count, int64_t mult, const DwEpilogue* ep, float* y);          \
  void dw_volume_##tier(const float* const* planes, int64_t kd, const float* wk,              \
                        const DwPlaneShape& s, float* y);

CNNFAST_DECLARE_DEPTHWISE(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_DEPTHWISE(avx2)
CNNFAST_DECLARE_DEPTHWISE(avx512)
#endif
#undef CNNFAST_DECLARE_DEPTHWISE

}  // namespace cnnfast::kernels
