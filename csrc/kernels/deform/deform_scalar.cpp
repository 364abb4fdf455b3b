// The bilinear channel-run sample of deform.h for the scalar tier.
#include <cstdint>

#include "kernels/deform/deform.h"

namespace cnnfast::kernels {

void bilinear_row_scalar(int64_t len, const float* const* p, const float* w, float* dst) {
  const float* p0 = p[0];
  const float* p1 = p[1];
  const float* p2 = p[2];
  const float* p3 = p[3];
  for (int64_t c = 0; c < len; ++c) {
    dst[c] = ((w[0] * p0[c] + w[1] * p1[c]) + w[2] * p2[c]) + w[3] * p3[c];
  }
}

}  // namespace cnnfast::kernels
