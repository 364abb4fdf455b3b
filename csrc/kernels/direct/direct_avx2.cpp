// The direct convolution kernel (direct_impl.h) compiled for the avx2 tier.
#include <cstdint>

#include "kernels/direct/direct.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/direct/direct_impl.h"
}  // namespace

void direct_planes_avx2(const float* x, int64_t c_count, int64_t x_plane, const float* w,
                        int oc_count, const DwPlaneShape& s, float* y, int64_t y_plane) {
  direct_planes_impl(x, c_count, x_plane, w, oc_count, s, y, y_plane);
}

}  // namespace cnnfast::kernels
