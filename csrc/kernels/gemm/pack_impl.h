// The panel packer, written once and compiled into each ISA translation unit (included inside
// that unit's anonymous namespace, so each copy has internal linkage and only runs on its tier).
// Layout produced: see GemmPackFn in gemm.h.
#pragma once

// Three loops by which stride is unit: a unit row stride (B row-major, or A column-major) makes
// each k step one contiguous copy; a unit column stride (A row-major) reads rows contiguously;
// anything else is a plain strided gather.
inline void pack_panels(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                        float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += r, dst += int64_t(r) * k) {
    const int valid = int(rows - r0 < r ? rows - r0 : r);
    const float* s = src + r0 * rs;
    if (rs == 1) {
      for (int64_t p = 0; p < k; ++p) {
        const float* sp = s + p * cs;
        float* d = dst + p * r;
        for (int i = 0; i < valid; ++i) d[i] = sp[i];
        for (int i = valid; i < r; ++i) d[i] = 0.0f;
      }
    } else if (cs == 1) {
      // Four rows at a time so each k step writes 16 contiguous bytes of the panel.
      int i = 0;
      for (; i + 4 <= valid; i += 4) {
        const float* s0 = s + i * rs;
        const float* s1 = s0 + rs;
        const float* s2 = s1 + rs;
        const float* s3 = s2 + rs;
        float* d = dst + i;
        for (int64_t p = 0; p < k; ++p, d += r) {
          d[0] = s0[p];
          d[1] = s1[p];
          d[2] = s2[p];
          d[3] = s3[p];
        }
      }
      for (; i < valid; ++i) {
        const float* si = s + i * rs;
        for (int64_t p = 0; p < k; ++p) dst[p * r + i] = si[p];
      }
      for (; i < r; ++i) {
        for (int64_t p = 0; p < k; ++p) dst[p * r + i] = 0.0f;
      }
    } else {
      for (int64_t p = 0; p < k; ++p) {
        float* d = dst + p * r;
        for (int i = 0; i < valid; ++i) d[i] = s[i * rs + p * cs];
        for (int i = valid; i < r; ++i) d[i] = 0.0f;
      }
    }
  }
}
