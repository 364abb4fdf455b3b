// AVX-512 SGEMM tier: a 14x32 micro-kernel (28 zmm accumulators, 2 for the B row, broadcasts of
// A from memory; 14 rows keep two FMA pipes busy with 4-cycle latency and leave 2 registers for
// loads) with masked stores for edge tiles, and the panel packer. Compiled with
// -mavx512f/bw/dq/vl -mfma only in this translation unit.
#include <immintrin.h>

#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace cnnfast::kernels {
namespace {

#include "kernels/gemm/pack_impl.h"

constexpr int kMr = 14, kNr = 32;

inline __m512 activate(__m512 x, const GemmEpilogue& ep) {
  const __m512 zero = _mm512_setzero_ps();
  // max(zero, x) / min(six, x) return x when x is NaN, so NaN propagates like PyTorch.
  switch (ep.activation) {
    case Activation::none: return x;
    case Activation::relu: return _mm512_max_ps(zero, x);
    case Activation::relu6: return _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, x));
    case Activation::leaky_relu: {
      const __mmask16 neg = _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ);
      return _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(ep.alpha));
    }
    case Activation::hardswish: {
      const __m512 t = _mm512_add_ps(x, _mm512_set1_ps(3.0f));
      const __m512 r6 = _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, t));
      return _mm512_mul_ps(_mm512_mul_ps(x, r6), _mm512_set1_ps(1.0f / 6.0f));
    }
  }
  return x;
}

inline __mmask16 lane_mask(int valid) {
  return valid >= 16 ? __mmask16(0xffff) : (valid <= 0 ? __mmask16(0) : __mmask16((1u << valid) - 1));
}

}  // namespace

void gemm_ukernel_avx512_14x32(int64_t k, const float* a, const float* b, float* c,
                               int64_t ldc, int m, int n, bool accumulate,
                               const GemmEpilogue* ep) {
  __m512 acc0[kMr], acc1[kMr];
#pragma GCC unroll 14
  for (int i = 0; i < kMr; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p, a += kMr, b += kNr) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }

  const __mmask16 mask0 = lane_mask(n), mask1 = lane_mask(n - 16);
  __m512 bias_col0 = _mm512_setzero_ps(), bias_col1 = _mm512_setzero_ps();
  if (ep && ep->bias_col) {
    bias_col0 = _mm512_maskz_loadu_ps(mask0, ep->bias_col);
    bias_col1 = _mm512_maskz_loadu_ps(mask1, ep->bias_col + 16);
  }
#pragma GCC unroll 14
  for (int i = 0; i < kMr; ++i) {
    if (i >= m) break;
    float* ci = c + i * ldc;
    __m512 v0 = acc0[i], v1 = acc1[i];
    if (accumulate) {
      v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, ci), v0);
      v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, ci + 16), v1);
    }
    if (ep) {
      if (ep->bias_row) {
        const __m512 br = _mm512_set1_ps(ep->bias_row[i]);
        v0 = _mm512_add_ps(v0, br);
        v1 = _mm512_add_ps(v1, br);
      }
      if (ep->bias_col) {
        v0 = _mm512_add_ps(v0, bias_col0);
        v1 = _mm512_add_ps(v1, bias_col1);
      }
      v0 = activate(v0, *ep);
      v1 = activate(v1, *ep);
    }
    _mm512_mask_storeu_ps(ci, mask0, v0);
    _mm512_mask_storeu_ps(ci + 16, mask1, v1);
  }
}

void gemm_pack_avx512(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                      float* dst) {
  pack_panels(rows, k, src, rs, cs, r, dst);
}

}  // namespace cnnfast::kernels
