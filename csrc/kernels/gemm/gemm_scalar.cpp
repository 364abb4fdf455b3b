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
inline void transpose_rows(int valid, int64_t k, const float* const* rows, int r, float* dst) {
  for (int64_t p = 0; p < k; ++p) {
    float* d = dst + p * r;
    for (int i = 0; i < valid; ++i) d[i] = rows[i][p];
    for (int i = valid; i < r; ++i) d[i] = 0.0f;
  }
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
    default:  // sigmoid, tanh, silu: applied by the driver after the store
      return x;
  }
  return x;
}

// acc += A * B over k steps. Packed A: a[p*mr + i], else a[i*lda + p]; packed B: b[p*nr + j],
// else b[p*ldb + j]. Compile-time strides keep the loops vectorisable (runtime strides made this
// kernel 5x slower).
template <bool kPackedA, bool kPackedB>
__attribute__((always_inline)) inline void multiply(int64_t k, const float* a, int64_t lda,
                                                    const float* b, int64_t ldb,
                                                    float (&acc)[kMr][kNr]) {
  for (int64_t p = 0; p < k; ++p, b += kPackedB ? kNr : ldb) {
    for (int i = 0; i < kMr; ++i) {
      const float ai = kPackedA ? a[p * kMr + i] : a[i * lda + p];
      for (int j = 0; j < kNr; ++j) acc[i][j] += ai * b[j];
    }
  }
}

// The tile's store: C = (accumulate ? C : 0) + acc, then the epilogue *ep (if any).
__attribute__((always_inline)) inline void finish(const float (&acc)[kMr][kNr], float* c,
                                                  int64_t ldc, int m, int n, bool accumulate,
                                                  const GemmEpilogue* ep) {
  for (int i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < n; ++j) {
      float v = accumulate ? ci[j] + acc[i][j] : acc[i][j];
      if (ep) {
        if (ep->scale_row) v *= ep->scale_row[i];
        if (ep->scale_col) v *= ep->scale_col[j];
        if (ep->bias_row) v += ep->bias_row[i];
        if (ep->bias_col) v += ep->bias_col[j];
        if (ep->addend) v += ep->addend[i * ldc + j];
        v = activate(v, *ep);
      }
      ci[j] = v;
    }
  }
}

}  // namespace

void gemm_ukernel_scalar_4x8(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, int m, int n, bool accumulate,
                             const GemmEpilogue* ep) {
  float acc[kMr][kNr] = {};
  if (lda == 0 && ldb == 0) {
    multiply<true, true>(k, a, 0, b, 0, acc);
  } else if (ldb == 0) {
    multiply<false, true>(k, a, lda, b, 0, acc);
  } else if (lda == 0) {
    multiply<true, false>(k, a, 0, b, ldb, acc);
  } else {
    multiply<false, false>(k, a, lda, b, ldb, acc);
  }
  finish(acc, c, ldc, m, n, accumulate, ep);
}

void gemm_ukernel_segments_scalar_4x8(int segments, const float* const* a, const int64_t* k,
                                      int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                      int n, bool accumulate, const GemmEpilogue* ep) {
  float acc[kMr][kNr] = {};
  for (int s = 0; s < segments; b += k[s] * kNr, ++s) {
    multiply<false, true>(k[s], a[s], lda, b, 0, acc);
  }
  finish(acc, c, ldc, m, n, accumulate, ep);
}

void gemm_pack_scalar(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                      float* dst) {
  pack_panels(rows, k, src, rs, cs, r, dst);
}

void gemm_pack_rows_scalar(int valid, int64_t k, const float* const* rows, int r, float* dst) {
  transpose_rows(valid, k, rows, r, dst);
}

void gemm_pack_runs_scalar(int64_t k, const float* base, int64_t row_stride, int64_t step,
                           const PanelRun* runs, int nruns, int r, float* dst) {
  for (int64_t p = 0; p < k; ++p, base += row_stride, dst += r) {
    for (int i = 0; i < r; ++i) dst[i] = 0.0f;
    for (int q = 0; q < nruns; ++q) {
      const float* src = base + runs[q].src;
      float* d = dst + runs[q].col;
      for (int v = 0; v < runs[q].count; ++v) d[v] = src[v * step];
    }
  }
}

}  // namespace cnnfast::kernels
