// Scalar SGEMM tier: a 4x8 micro-kernel in plain C++ (baseline flags; the compiler may use SSE2)
// and the panel packer. Runs on any CPU, including aarch64, and is the correctness fallback.
#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace cnnfast::kernels {
namespace {

#include "kernels/gemm/pack_impl.h"

// No SIMD here: both fast paths are the gather with one stride fixed at 1.
inline void copy_panel(int valid, int64_t k, const float* src, int64_t cs, int r, float* dst) {
  gather_panel(valid, k, src, 1, cs, r, dst);
}
inline void transpose_panel(int valid, int64_t k, const float* src, int64_t rs, int r, float* dst) {
  gather_panel(valid, k, src, rs, 1, r, dst);
}

constexpr int kMr = 4, kNr = 8;

inline float activate(float x, const GemmEpilogue& ep) {
  // Written so that NaN propagates (comparisons with NaN are false).
  switch (ep.activation) {
    case Activation::none:
      return x;
    case Activation::relu:
      return x < 0.0f ? 0.0f : x;
    case Activation::relu6:
      return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case Activation::leaky_relu:
      return x < 0.0f ? x * ep.alpha : x;
    case Activation::hardswish: {
      const float t = x + 3.0f;
      return x * (t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t)) * (1.0f / 6.0f);
    }
  }
  return x;
}

}  // namespace

void gemm_ukernel_scalar_4x8(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, int m, int n, bool accumulate,
                             const GemmEpilogue* ep) {
  // Packed (lda == 0): A(i, p) at a[p*mr + i]; in place: at a[i*lda + p]. B likewise.
  const int64_t row_step = lda == 0 ? 1 : lda, k_step = lda == 0 ? kMr : 1;
  const int64_t b_step = ldb == 0 ? kNr : ldb;
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < k; ++p, b += b_step) {
    for (int i = 0; i < kMr; ++i) {
      const float ai = a[i * row_step + p * k_step];
      for (int j = 0; j < kNr; ++j) acc[i][j] += ai * b[j];
    }
  }
  for (int i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < n; ++j) {
      float v = accumulate ? ci[j] + acc[i][j] : acc[i][j];
      if (ep) {
        if (ep->bias_row) v += ep->bias_row[i];
        if (ep->bias_col) v += ep->bias_col[j];
        v = activate(v, *ep);
      }
      ci[j] = v;
    }
  }
}

void gemm_pack_scalar(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                      float* dst) {
  pack_panels(rows, k, src, rs, cs, r, dst);
}

}  // namespace cnnfast::kernels
