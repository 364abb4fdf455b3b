// The in-register 16x16 transpose shared by the AVX-512 units that need one (the GEMM packer,
// the elementwise transpose), included inside each one's anonymous namespace after
// <immintrin.h>.
#pragma once

// In-register transpose of a 16x16 block: on return row[j] holds column j of the input.
// unpack_ps / unpack_pd transpose 4x4 blocks inside each 128-bit lane, then two rounds of
// shuffle_f32x4 transpose the 4x4 grid of lanes.
inline void transpose16x16(__m512 row[16]) {
  __m512 t[16], u[16];
  for (int q = 0; q < 8; ++q) {
    t[2 * q] = _mm512_unpacklo_ps(row[2 * q], row[2 * q + 1]);
    t[2 * q + 1] = _mm512_unpackhi_ps(row[2 * q], row[2 * q + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));      // column 4L of rows 4g..4g+3
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));  // column 4L+1
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));  // column 4L+2
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));  // column 4L+3
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    row[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    row[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    row[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    row[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}
