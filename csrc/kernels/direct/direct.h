// Direct convolution kernel contract: a block of output channel planes of one group from its
// input channel planes (NCHW), for conv2d's "direct" algorithm (ops/conv2d_direct.cpp). Each
// output sums over input channels, then kernel rows, then kernel columns (c, i, j), the taps
// inside the image only, from zero.
#pragma once

#include <cstdint>

#include "core/isa.h"
#include "kernels/depthwise/depthwise.h"  // DwPlaneShape: the window geometry of one plane

namespace cnnfast::kernels {

// The most output channels one call computes (the AVX-512 kernel holds one 16-pixel register
// per output channel).
constexpr int kDirectMaxOutputs = 8;

// y[o][oh][ow] (plane o at y + o*y_plane) = sum over c < c_count and the taps (i, j) inside the
// image of w[((o*c_count + c)*kh + i)*kw + j] * x[c][ih][iw] (plane c at x + c*x_plane), for
// o < oc_count <= kDirectMaxOutputs.
using DirectPlanesFn = void (*)(const float* x, int64_t c_count, int64_t x_plane, const float* w,
                                int oc_count, const DwPlaneShape& s, float* y, int64_t y_plane);

struct DirectKernel {
  const char* name;
  Isa isa;
  DirectPlanesFn planes;
};

#define CNNFAST_DECLARE_DIRECT(tier)                                                          \
  void direct_planes_##tier(const float* x, int64_t c_count, int64_t x_plane, const float* w, \
                            int oc_count, const DwPlaneShape& s, float* y, int64_t y_plane);

CNNFAST_DECLARE_DIRECT(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_DIRECT(avx2)
CNNFAST_DECLARE_DIRECT(avx512)
#endif
#undef CNNFAST_DECLARE_DIRECT

}  // namespace cnnfast::kernels
