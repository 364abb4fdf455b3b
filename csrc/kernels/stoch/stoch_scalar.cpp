// The stochastic pooling kernels (stoch_impl.h) compiled for the scalar tier: the generic
// lane-by-lane block everywhere.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/stoch/stoch.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/stoch/stoch_impl.h"
}  // namespace

uint32_t stoch_plane_scalar(const StochGeometry& g, int64_t plane, const float* x, float* y,
                            int64_t* idx) {
  return stoch_plane_impl(g, plane, x, y, idx,
                          [&g](auto... args) { return stoch_block_scalar(g, args...); });
}

uint32_t stoch_row_scalar(const StochGeometry& g, int64_t n, int64_t oh, const float* x, float* y,
                          int64_t* idx) {
  return stoch_row_impl(g, n, oh, x, y, idx,
                        [&g](auto... args) { return stoch_block_scalar(g, args...); });
}

uint32_t stoch_max_bits_scalar(int64_t n, const float* x) { return stoch_max_bits_impl(n, x); }

}  // namespace cnnfast::kernels
