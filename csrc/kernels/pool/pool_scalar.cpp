// The pooling kernels (pool_impl.h) compiled for the scalar tier.
#include <cmath>
#include <cstdint>

#include "kernels/pool/pool.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/pool/pool_impl.h"
}  // namespace

void pool_max_scalar(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx, int64_t pos,
                     int64_t pos_step) {
  pool_max_impl(n, x, step, acc, idx, pos, pos_step);
}

void pool_sum_scalar(int64_t n, const float* x, int64_t step, float power, float* acc) {
  pool_sum_impl(n, x, step, power, acc);
}

void pool_reduce_max_scalar(int64_t n, const float* x, float* acc, int64_t* idx, int64_t pos) {
  reduce_max_impl(n, x, acc, idx, pos);
}

void pool_reduce_sum_scalar(int64_t n, const float* x, float* acc) { reduce_sum_impl(n, x, acc); }

void pool_taps_max_scalar(int64_t c, const float* const* taps, const int64_t* pos, int ntaps,
                          float* out, int64_t* idx, int64_t first) {
  pool_taps_max_impl(c, taps, pos, ntaps, out, idx, first);
}

void pool_taps_sum_scalar(int64_t c, const float* const* taps, int ntaps, float power, float scale,
                          float* out) {
  pool_taps_sum_impl(c, taps, ntaps, power, scale, out);
}

void pool_row_scalar(int64_t n, const float* v, int64_t step, int64_t dilation, int k, bool is_max,
                     const float* col_scale, float* out) {
  pool_row_impl(n, v, step, dilation, k, is_max, col_scale, out);
}

}  // namespace cnnfast::kernels
