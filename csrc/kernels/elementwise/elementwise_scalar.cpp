// The elementwise kernels (elementwise_impl.h) compiled for the scalar tier.
#include <cstdint>
#include <cstring>

#include "kernels/elementwise/elementwise.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/elementwise/elementwise_impl.h"
}  // namespace

void scale_shift_scalar(int64_t n, const float* x, ChannelAffine a, Activation act, float alpha,
                        float* y) {
  scale_shift_impl(n, x, a, act, alpha, y);
}

void scale_shift_rows_scalar(int64_t rows, int64_t c, const float* x, const float* hi,
                             const float* lo, const float* scale, const float* shift,
                             Activation act, float alpha, float* y) {
  scale_shift_rows_impl(rows, c, x, hi, lo, scale, shift, act, alpha, y);
}

void moments_scalar(int64_t n, const float* x, double* mean, double* m2) {
  moments_impl(n, x, mean, m2);
}

void moments_rows_scalar(int64_t rows, int64_t c, int64_t ld, const float* x, float* dmean,
                         float* m2) {
  moments_rows_impl(rows, c, ld, x, dmean, m2);
}

void transpose_scalar(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst,
                      int64_t dst_ld) {
  transpose_impl(rows, cols, src, src_ld, dst, dst_ld);
}

}  // namespace cnnfast::kernels
