// Depthwise kernels, scalar tier: multiply then add (no FMA), the same in both kernels.
#include <cstdint>

#include "kernels/depthwise/depthwise.h"

namespace cnnfast::kernels {

void dw_row_scalar(int64_t n, const float* x, int64_t step, float w, float* acc) {
  for (int64_t i = 0; i < n; ++i) acc[i] += w * x[i * step];
}

void dw_pixel_scalar(int64_t c, const float* const* taps, const float* const* weights, int ntaps,
                     int64_t npix, int64_t step, int /*kw*/, int64_t /*col_step*/, float* out) {
  for (int64_t px = 0; px < npix; ++px, out += c) {
    for (int64_t j = 0; j < c; ++j) out[j] = 0.0f;
    for (int t = 0; t < ntaps; ++t) {
      for (int64_t j = 0; j < c; ++j) out[j] += taps[t][px * step + j] * weights[t][j];
    }
  }
}

namespace {
#include "kernels/depthwise/depthwise_impl.h"
}  // namespace

bool dw_plane_scalar(const float* x, const float* wk, const DwPlaneShape& s, int64_t first,
                     int64_t count, int64_t mult, const DwEpilogue* ep, float* y) {
  return planes_by_rows(x, wk, s, first, count, mult, ep, y, dw_row_scalar);
}

void dw_volume_scalar(const float* const* planes, int64_t kd, const float* wk,
                      const DwPlaneShape& s, float* y) {
  volume_by_rows(planes, kd, wk, s, y, dw_row_scalar);
}

}  // namespace cnnfast::kernels
