// The pooling kernels (pool_impl.h) compiled for the avx512 tier.
#include <cmath>
#include <cstdint>

#include <immintrin.h>

#include "kernels/pool/pool.h"

namespace cnnfast::kernels {
namespace {
#include "kernels/pool/pool_impl.h"
}  // namespace

void pool_max_avx512(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx, int64_t pos,
                     int64_t pos_step) {
  pool_max_impl(n, x, step, acc, idx, pos, pos_step);
}

void pool_sum_avx512(int64_t n, const float* x, int64_t step, float power, float* acc) {
  pool_sum_impl(n, x, step, power, acc);
}

void pool_reduce_max_avx512(int64_t n, const float* x, float* acc, int64_t* idx, int64_t pos) {
  reduce_max_impl(n, x, acc, idx, pos);
}

// Intrinsics rather than the generic loop: the compiler's version of that spilled its lanes to
// the stack and took 2x longer than torch on a 2048@7x7 global average (perf).
void pool_reduce_sum_avx512(int64_t n, const float* x, float* acc) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(mask, x + i));
  }
  *acc += _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

}  // namespace cnnfast::kernels
