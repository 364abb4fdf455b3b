// Border masks and loads shared by the AVX-512 plane kernels (depthwise_avx512.cpp,
// direct/direct_avx512.cpp), included inside each one's anonymous namespace after
// <immintrin.h> and depthwise.h (DwPlaneShape).
#pragma once

// Per 16-output chunk of a row and per kernel column j: the lanes whose tap reads inside the
// row, and (stride 2) the two masked loads that fetch exactly those inputs. The same for every
// output row, so callers work them out once per plane.
struct ColumnMasks {
  __mmask16 lanes, lo, hi;
};

inline ColumnMasks column_masks(const DwPlaneShape& s, int64_t ow0, int64_t j) {
  const int64_t offset = j * s.dilation_w - s.pad_left;
  ColumnMasks m{0, 0, 0};
  for (int l = 0; l < 16 && ow0 + l < s.ow; ++l) {
    const int64_t iw = (ow0 + l) * s.stride_w + offset;
    if (iw < 0 || iw >= s.w) continue;
    m.lanes |= __mmask16(1u << l);
    if (2 * l < 16) {
      m.lo |= __mmask16(1u << (2 * l));
    } else {
      m.hi |= __mmask16(1u << (2 * l - 16));
    }
  }
  return m;
}

// Lane l = base[l * stride] for the lanes of m (stride 1 or 2); masked-off lanes are not read,
// so they may fall outside the row.
inline __m512 load_columns(const ColumnMasks& m, const float* base, int64_t stride) {
  if (stride == 1) return _mm512_maskz_loadu_ps(m.lanes, base);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m.lo, base), even,
                                _mm512_maskz_loadu_ps(m.hi, base + 16));
}
