// Deformable convolution kernel contract: one output pixel's sampled channel run of one kernel
// tap, for deform_conv2d's sampled columns (ops/deform_conv2d.cpp). Each sample's four corners
// are channel runs of an NHWC image (or of a zero row where a corner lies outside the image),
// so sampling is four contiguous vector streams: no hardware gather.
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace cnnfast::kernels {

// One tap of one output pixel for one offset group: the four bilinear corners as pixel indices
// h*W + w of the image (-1: outside the image, read as zeros) and their weights (times the
// mask). Corner order: (top, left), (top, right), (bottom, left), (bottom, right).
struct DeformSample {
  int32_t corner[4];
  float weight[4];
};

// For each of `count` output pixels i: dst[i*dst_stride + j] for j < len, channels c0 + j of an
// NHWC image x (pixel p's channels at x + p*pixel_stride), where channel c0 is channel `skip` of
// the offset group whose sample for pixel i is samples[i*sample_stride]; the channels of the
// following groups take the next samples (each group `group_channels` long). The value is
// ((w0*x[p0][c] + w1*x[p1][c]) + w2*x[p2][c]) + w3*x[p3][c], a corner of -1 reading zeros[]
// (at least len zeros) instead of x. One call per panel's run (pixel by pixel, one call each,
// measured 6-12 % slower on 64@56x56: the image's L1 reuse is across pixels of one tap).
using DeformRunFn = void (*)(int count, const float* x, int64_t pixel_stride,
                             const DeformSample* samples, int64_t sample_stride,
                             int64_t group_channels, int64_t skip, int64_t c0, int64_t len,
                             const float* zeros, float* dst, int64_t dst_stride);

// The plan entries of `count` output pixels of one (offset group, tap) along an output row:
// pixel i samples the point (y + dy[i*stride], float(x0 + i*x_step) + dx[i*stride]) of an
// h x w image, times m[i*m_stride] (1 when m is nullptr), into out[i*out_stride], by
// torchvision's bilinear rule: a point at or beyond one pixel outside the image (y <= -1,
// y >= h, x <= -1, x >= w) samples 0 (weights 0 * mask, no corner); inside that, the corners
// that lie in the image carry weights (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx (times the mask),
// ly and lx the fractional parts. A NaN coordinate gives NaN weights and no corner.
using DeformPlanFn = void (*)(int64_t count, float y, int64_t x0, int64_t x_step, const float* dy,
                              const float* dx, int64_t stride, const float* m, int64_t m_stride,
                              int64_t h, int64_t w, DeformSample* out, int64_t out_stride);

struct DeformKernel {
  const char* name;
  Isa isa;
  DeformRunFn run;
  DeformPlanFn plan;
};

#define CNNFAST_DECLARE_DEFORM(tier)                                                           \
  void deform_run_##tier(int count, const float* x, int64_t pixel_stride,                      \
                         const DeformSample* samples, int64_t sample_stride,                   \
                         int64_t group_channels, int64_t skip, int64_t c0, int64_t len,        \
                         const float* zeros, float* dst, int64_t dst_stride);                  \
  void deform_plan_##tier(int64_t count, float y, int64_t x0, int64_t x_step, const float* dy, \
                          const float* dx, int64_t stride, const float* m, int64_t m_stride,   \
                          int64_t h, int64_t w, DeformSample* out, int64_t out_stride);

CNNFAST_DECLARE_DEFORM(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_DEFORM(avx2)
CNNFAST_DECLARE_DEFORM(avx512)
#endif
#undef CNNFAST_DECLARE_DEFORM

}  // namespace cnnfast::kernels
