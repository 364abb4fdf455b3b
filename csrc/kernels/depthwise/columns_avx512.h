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
  // Lane l reads column a + l*stride: the lanes [lo, hi) read inside [0, w). In closed form: a
  // loop over the lanes cost 12 % of a 144@56x56 3x3 layer (it runs per plane and chunk).
  const int64_t st = s.stride_w, a = ow0 * st + j * s.dilation_w - s.pad_left;
  const int64_t lanes = s.ow - ow0 < 16 ? s.ow - ow0 : 16;
  const int64_t lo = a >= 0 ? 0 : (-a + st - 1) / st;
  int64_t hi = s.w - 1 - a < 0 ? 0 : (s.w - 1 - a) / st + 1;
  hi = hi < lanes ? hi : lanes;
  if (lo >= hi) return ColumnMasks{0, 0, 0};
  const auto below = [](int64_t n) { return n >= 32 ? ~uint32_t(0) : (uint32_t(1) << n) - 1; };
  // Stride 2: lane l's input is float 2l of the 32 from the chunk's first.
  const uint32_t pairs = 0x55555555u & below(2 * hi) & ~below(2 * lo);
  return ColumnMasks{__mmask16(below(hi) & ~below(lo)), __mmask16(pairs & 0xffff),
                     __mmask16(pairs >> 16)};
}

// Lane l = base[l * stride] for the lanes of m (stride 1 or 2); masked-off lanes are not read,
// so they may fall outside the row.
inline __m512 load_columns(const ColumnMasks& m, const float* base, int64_t stride) {
  if (stride == 1) return _mm512_maskz_loadu_ps(m.lanes, base);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m.lo, base), even,
                                _mm512_maskz_loadu_ps(m.hi, base + 16));
}
