// Deformable convolution kernel contract: one bilinear sample of a run of channels, for
// deform_conv2d's sampled columns (ops/deform_conv2d.cpp). The four corners are channel runs of
// an NHWC image (or of a zero row where a corner lies outside the image), so the sample of `len`
// channels is four contiguous vector streams: no hardware gather.
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace cnnfast::kernels {

// dst[c] = ((w[0]*p[0][c] + w[1]*p[1][c]) + w[2]*p[2][c]) + w[3]*p[3][c] for c < len.
using BilinearRowFn = void (*)(int64_t len, const float* const* p, const float* w, float* dst);

struct DeformKernel {
  const char* name;
  Isa isa;
  BilinearRowFn bilinear_row;
};

#define CNNFAST_DECLARE_DEFORM(tier) \
  void bilinear_row_##tier(int64_t len, const float* const* p, const float* w, float* dst);

CNNFAST_DECLARE_DEFORM(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_DEFORM(avx2)
CNNFAST_DECLARE_DEFORM(avx512)
#endif
#undef CNNFAST_DECLARE_DEFORM

}  // namespace cnnfast::kernels
