// AVX2+FMA SGEMM tier: a 6x16 micro-kernel (12 ymm accumulators, 2 for the B row, 1 broadcast:
// 15 of the 16 registers) with masked stores for edge tiles, and the panel packer. Compiled with
// -mavx2 -mfma only in this translation unit.
#include <immintrin.h>

#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace cnnfast::kernels {
namespace {

#include "kernels/gemm/pack_impl.h"

constexpr int kMr = 6, kNr = 16;

inline __m256 activate(__m256 x, const GemmEpilogue& ep) {
  const __m256 zero = _mm256_setzero_ps();
  // max(zero, x) / min(six, x) return x when x is NaN, so NaN propagates like PyTorch.
  switch (ep.activation) {
    case Activation::none: return x;
    case Activation::relu: return _mm256_max_ps(zero, x);
    case Activation::relu6: return _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(zero, x));
    case Activation::leaky_relu: {
      const __m256 neg = _mm256_cmp_ps(x, zero, _CMP_LT_OQ);
      return _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(ep.alpha)), neg);
    }
    case Activation::hardswish: {
      const __m256 t = _mm256_add_ps(x, _mm256_set1_ps(3.0f));
      const __m256 r6 = _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(zero, t));
      return _mm256_mul_ps(_mm256_mul_ps(x, r6), _mm256_set1_ps(1.0f / 6.0f));
    }
  }
  return x;
}

// All-ones in the lanes below `valid`: the mask form maskload/maskstore take.
inline __m256i lane_mask(int valid) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lanes);
}

}  // namespace

void gemm_ukernel_avx2_6x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            int m, int n, bool accumulate, const GemmEpilogue* ep) {
  __m256 acc0[kMr], acc1[kMr];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p, a += kMr, b += kNr) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
  }

  const __m256i mask0 = lane_mask(n), mask1 = lane_mask(n - 8);
  __m256 bias_col0 = _mm256_setzero_ps(), bias_col1 = _mm256_setzero_ps();
  if (ep && ep->bias_col) {
    bias_col0 = _mm256_maskload_ps(ep->bias_col, mask0);
    bias_col1 = _mm256_maskload_ps(ep->bias_col + 8, mask1);
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    if (i >= m) break;
    float* ci = c + i * ldc;
    __m256 v0 = acc0[i], v1 = acc1[i];
    if (accumulate) {
      v0 = _mm256_add_ps(_mm256_maskload_ps(ci, mask0), v0);
      v1 = _mm256_add_ps(_mm256_maskload_ps(ci + 8, mask1), v1);
    }
    if (ep) {
      if (ep->bias_row) {
        const __m256 br = _mm256_broadcast_ss(ep->bias_row + i);
        v0 = _mm256_add_ps(v0, br);
        v1 = _mm256_add_ps(v1, br);
      }
      if (ep->bias_col) {
        v0 = _mm256_add_ps(v0, bias_col0);
        v1 = _mm256_add_ps(v1, bias_col1);
      }
      v0 = activate(v0, *ep);
      v1 = activate(v1, *ep);
    }
    _mm256_maskstore_ps(ci, mask0, v0);
    _mm256_maskstore_ps(ci + 8, mask1, v1);
  }
}

void gemm_pack_avx2(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                    float* dst) {
  pack_panels(rows, k, src, rs, cs, r, dst);
}

}  // namespace cnnfast::kernels
