// The deformable sampling run of deform.h for the scalar tier.
#include <cstdint>

#include "kernels/deform/deform.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/deform/deform_impl.h"

void bilinear(int64_t len, const float* const* p, const float* w, float* dst) {
  for (int64_t c = 0; c < len; ++c) {
    dst[c] = ((w[0] * p[0][c] + w[1] * p[1][c]) + w[2] * p[2][c]) + w[3] * p[3][c];
  }
}

}  // namespace

void deform_run_scalar(int count, const float* x, int64_t pixel_stride, const DeformSample* samples,
                       int64_t sample_stride, int64_t group_channels, int64_t skip, int64_t c0,
                       int64_t len, const float* zeros, float* dst, int64_t dst_stride) {
  deform_run_impl(count, x, pixel_stride, samples, sample_stride, group_channels, skip, c0, len,
                  zeros, dst, dst_stride, bilinear);
}

void deform_plan_scalar(int64_t count, float y, int64_t x0, int64_t x_step, const float* dy,
                        const float* dx, int64_t stride, const float* m, int64_t m_stride,
                        int64_t h, int64_t w, DeformSample* out, int64_t out_stride) {
  deform_plan_impl(count, y, x0, x_step, dy, dx, stride, m, m_stride, h, w, out, out_stride);
}

}  // namespace cnnfast::kernels
