// AVX2+FMA SGEMM tier: a 6x16 micro-kernel (12 ymm accumulators, 2 for the B row, 1 broadcast:
// 15 of the 16 registers) with masked stores for edge tiles, and the panel packer. Compiled with
// -mavx2 -mfma only in this translation unit.
#include <immintrin.h>

#include <climits>
#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace cnnfast::kernels {
namespace {

#include "kernels/gemm/pack_impl.h"

constexpr int kMr = 6, kNr = 16;

// All-ones in the lanes below `valid`: the mask form maskload/maskstore take.
inline __m256i lane_mask(int valid) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lanes);
}

inline void copy_panel(int valid, int64_t k, const float* src, int64_t cs, int r, float* dst) {
  for (int64_t p = 0; p < k; ++p, src += cs, dst += r) {
    for (int i = 0; i < r; i += 8) {
      // Lanes past `valid` load as zero; lanes past r are not stored. Whole slices use plain
      // loads and stores: a masked store (vmaskmovps) costs several times a plain one on AMD.
      const __m256 v = valid - i >= 8 ? _mm256_loadu_ps(src + i)
                                      : _mm256_maskload_ps(src + i, lane_mask(valid - i));
      if (r - i >= 8) {
        _mm256_storeu_ps(dst + i, v);
      } else {
        _mm256_maskstore_ps(dst + i, lane_mask(r - i), v);
      }
    }
  }
}

// In-register transpose of an 8x8 block: on return row[j] holds column j of the input.
inline void transpose8x8(__m256 row[8]) {
  __m256 t[8], u[8];
  for (int q = 0; q < 4; ++q) {
    t[2 * q] = _mm256_unpacklo_ps(row[2 * q], row[2 * q + 1]);
    t[2 * q + 1] = _mm256_unpackhi_ps(row[2 * q], row[2 * q + 1]);
  }
  for (int g = 0; g < 2; ++g) {  // u[4g + c] holds column 4L+c of rows 4g..4g+3 in lane L
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    row[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    row[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// Rows are read 8 k-values at a time and transposed 8 rows at a time (r may be 6 or 16).
inline void transpose_rows(int valid, int64_t k, const float* const* rows, int r, float* dst) {
  for (int64_t p = 0; p < k; p += 8) {
    const int kn = int(k - p < 8 ? k - p : 8);
    const __m256i kmask = lane_mask(kn);
    for (int i0 = 0; i0 < r; i0 += 8) {
      __m256 block[8];
      for (int i = 0; i < 8; ++i) {
        block[i] =
            i0 + i < valid ? _mm256_maskload_ps(rows[i0 + i] + p, kmask) : _mm256_setzero_ps();
      }
      transpose8x8(block);
      if (r - i0 >= 8) {
        for (int j = 0; j < kn; ++j) _mm256_storeu_ps(dst + (p + j) * r + i0, block[j]);
      } else if (i0 == 0) {
        // A panel narrower than 8 (mr = 6): its k steps are back to back, so a full store of
        // step j spills only into step j + 1, which the next store overwrites; only the last
        // step is masked (masked stores are several times slower than plain ones on AMD).
        for (int j = 0; j + 1 < kn; ++j) _mm256_storeu_ps(dst + (p + j) * r, block[j]);
        _mm256_maskstore_ps(dst + (p + kn - 1) * r, lane_mask(r), block[kn - 1]);
      } else {
        const __m256i rmask = lane_mask(r - i0);
        for (int j = 0; j < kn; ++j) _mm256_maskstore_ps(dst + (p + j) * r + i0, rmask, block[j]);
      }
    }
  }
}

inline __m256 activate(__m256 x, const GemmEpilogue& ep) {
  const __m256 zero = _mm256_setzero_ps();
  // max(zero, x) / min(six, x) return x when x is NaN, so NaN propagates like PyTorch.
  switch (ep.activation) {
    case Activation::none:
      return x;
    case Activation::relu:
      return _mm256_max_ps(zero, x);
    case Activation::relu6:
      return _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(zero, x));
    case Activation::leaky_relu: {
      const __m256 neg = _mm256_cmp_ps(x, zero, _CMP_LT_OQ);
      return _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(ep.alpha)), neg);
    }
    case Activation::hardswish: {
      const __m256 t = _mm256_add_ps(x, _mm256_set1_ps(3.0f));
      const __m256 r6 = _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(zero, t));
      return _mm256_mul_ps(_mm256_mul_ps(x, r6), _mm256_set1_ps(1.0f / 6.0f));
    }
    default:  // sigmoid, tanh, silu: applied by the driver after the store
      return x;
  }
  return x;
}

// acc += A * B over k steps. Packed A: a[p*mr + i], else a[i*lda + p] (all mr rows present).
// Packed B: b[p*nr + j], else b[p*ldb + j] (all nr columns present).
template <bool kPackedA, bool kPackedB>
__attribute__((always_inline)) inline void multiply(int64_t k, const float* a, int64_t lda,
                                                    const float* b, int64_t ldb, __m256* acc0,
                                                    __m256* acc1) {
  const int64_t b_step = kPackedB ? kNr : ldb;
  for (int64_t p = 0; p < k; ++p, b += b_step) {
    const __m256 b0 = kPackedB ? _mm256_load_ps(b) : _mm256_loadu_ps(b);
    const __m256 b1 = kPackedB ? _mm256_load_ps(b + 8) : _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(kPackedA ? a + p * kMr + i : a + i * lda + p);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
  }
}

// The tile's store: C = (accumulate ? C : 0) + acc, then the epilogue *ep (if any), rows < m
// and columns < n only. Always inlined: as a call, the accumulators' address escaped and they
// lived in memory through the k loop (the micro-kernel ran at half speed).
__attribute__((always_inline)) inline void finish(__m256* acc0, __m256* acc1, float* c, int64_t ldc,
                                                  int m, int n, bool accumulate,
                                                  const GemmEpilogue* ep) {
  const __m256i mask0 = lane_mask(n), mask1 = lane_mask(n - 8);
  // A full-width tile loads and stores C with plain instructions: vmaskmovps to memory costs
  // several times a plain store on AMD (the micro-kernel alone ran ~5 % below peak).
  const bool full = n == kNr;
  __m256 bias_col0 = _mm256_setzero_ps(), bias_col1 = _mm256_setzero_ps();
  if (ep && ep->bias_col) {
    bias_col0 = _mm256_maskload_ps(ep->bias_col, mask0);
    bias_col1 = _mm256_maskload_ps(ep->bias_col + 8, mask1);
  }
  __m256 scale_col0 = _mm256_setzero_ps(), scale_col1 = _mm256_setzero_ps();
  if (ep && ep->scale_col) {
    scale_col0 = _mm256_maskload_ps(ep->scale_col, mask0);
    scale_col1 = _mm256_maskload_ps(ep->scale_col + 8, mask1);
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    if (i >= m) break;
    float* ci = c + i * ldc;
    __m256 v0 = acc0[i], v1 = acc1[i];
    if (accumulate) {
      v0 = _mm256_add_ps(full ? _mm256_loadu_ps(ci) : _mm256_maskload_ps(ci, mask0), v0);
      v1 = _mm256_add_ps(full ? _mm256_loadu_ps(ci + 8) : _mm256_maskload_ps(ci + 8, mask1), v1);
    }
    if (ep) {
      if (ep->scale_row) {
        const __m256 sr = _mm256_broadcast_ss(ep->scale_row + i);
        v0 = _mm256_mul_ps(v0, sr);
        v1 = _mm256_mul_ps(v1, sr);
      }
      if (ep->scale_col) {
        v0 = _mm256_mul_ps(v0, scale_col0);
        v1 = _mm256_mul_ps(v1, scale_col1);
      }
      if (ep->bias_row) {
        const __m256 br = _mm256_broadcast_ss(ep->bias_row + i);
        v0 = _mm256_add_ps(v0, br);
        v1 = _mm256_add_ps(v1, br);
      }
      if (ep->bias_col) {
        v0 = _mm256_add_ps(v0, bias_col0);
        v1 = _mm256_add_ps(v1, bias_col1);
      }
      if (ep->addend) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ep->addend + i * ldc, mask0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ep->addend + i * ldc + 8, mask1));
      }
      v0 = activate(v0, *ep);
      v1 = activate(v1, *ep);
    }
    if (full) {
      _mm256_storeu_ps(ci, v0);
      _mm256_storeu_ps(ci + 8, v1);
    } else {
      _mm256_maskstore_ps(ci, mask0, v0);
      _mm256_maskstore_ps(ci + 8, mask1, v1);
    }
  }
}

// C rows are touched only after the k loop; start bringing them in now.
inline void prefetch_c(const float* c, int64_t ldc, int m, int n) {
  for (int i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + n - 1), _MM_HINT_T0);
  }
}

__attribute__((always_inline)) inline void zero(__m256* acc0, __m256* acc1) {
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
}

}  // namespace

void gemm_ukernel_avx2_6x16(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                            float* c, int64_t ldc, int m, int n, bool accumulate,
                            const GemmEpilogue* ep) {
  prefetch_c(c, ldc, m, n);
  __m256 acc0[kMr], acc1[kMr];
  zero(acc0, acc1);
  if (lda == 0 && ldb == 0) {
    multiply<true, true>(k, a, 0, b, 0, acc0, acc1);
  } else if (ldb == 0) {
    multiply<false, true>(k, a, lda, b, 0, acc0, acc1);
  } else if (lda == 0) {
    multiply<true, false>(k, a, 0, b, ldb, acc0, acc1);
  } else {
    multiply<false, false>(k, a, lda, b, ldb, acc0, acc1);
  }
  finish(acc0, acc1, c, ldc, m, n, accumulate, ep);
}

void gemm_ukernel_segments_avx2_6x16(int segments, const float* const* a, const int64_t* k,
                                     int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                     int n, bool accumulate, const GemmEpilogue* ep) {
  prefetch_c(c, ldc, m, n);
  __m256 acc0[kMr], acc1[kMr];
  zero(acc0, acc1);
  for (int s = 0; s < segments; b += k[s] * kNr, ++s) {
    multiply<false, true>(k[s], a[s], lda, b, 0, acc0, acc1);
  }
  finish(acc0, acc1, c, ldc, m, n, accumulate, ep);
}

void gemm_pack_avx2(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                    float* dst) {
  pack_panels(rows, k, src, rs, cs, r, dst);
}

void gemm_pack_rows_avx2(int valid, int64_t k, const float* const* rows, int r, float* dst) {
  transpose_rows(valid, k, rows, r, dst);
}

// As gemm_pack_runs_avx512, 8 columns at a time: maskload does not access masked-off lanes.
void gemm_pack_runs_avx2(int64_t k, const float* base, int64_t row_stride, int64_t step,
                         const PanelRun* runs, int nruns, int r, float* dst) {
  // The gather's lane offsets L*step are 32-bit: a step this large (a source row of more than
  // 2^31 elements) packs element by element.
  if (step > INT32_MAX / 7)
    return gemm_pack_runs_scalar(k, base, row_stride, step, runs, nruns, r, dst);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i index = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(int32_t(step)));
  for (int i0 = 0; i0 < r; i0 += 8) {
    __m256i masks[kMaxPanelRows];
    int64_t offset[kMaxPanelRows];
    int used = 0;
    for (int q = 0; q < nruns; ++q) {
      const int lo = runs[q].col - i0, hi = lo + runs[q].count;
      if (hi <= 0 || lo >= 8) continue;
      masks[used] = _mm256_andnot_si256(lane_mask(lo), lane_mask(hi));
      offset[used] = runs[q].src - lo * step;
      ++used;
    }
    const __m256i store = lane_mask(r - i0);
    const float* row = base;
    for (int64_t p = 0; p < k; ++p, row += row_stride) {
      __m256 v = _mm256_setzero_ps();
      for (int q = 0; q < used; ++q) {
        const __m256 m = _mm256_castsi256_ps(masks[q]);
        // Masked lanes load 0 (maskload) or keep v (gather); runs do not overlap, so OR merges.
        v = step == 1 ? _mm256_or_ps(v, _mm256_maskload_ps(row + offset[q], masks[q]))
                      : _mm256_mask_i32gather_ps(v, row + offset[q], index, m, 4);
      }
      _mm256_maskstore_ps(dst + p * r + i0, store, v);
    }
  }
}

}  // namespace cnnfast::kernels
