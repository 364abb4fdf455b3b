// The panel packer's shared frame, compiled into each ISA translation unit (included inside that
// unit's anonymous namespace, so each copy has internal linkage and only runs on its tier).
// Layout produced: see GemmPackFn in gemm.h. The including unit defines the two fast paths
// declared here; both write every element of one r x k panel, zero-filling rows valid..r-1.
#pragma once

// Rows are unit-stride (src[i + p*cs]): each k step is one contiguous copy.
inline void copy_panel(int valid, int64_t k, const float* src, int64_t cs, int r, float* dst);
// One panel from `valid` row pointers, each row unit-stride in k: a transpose.
inline void transpose_rows(int valid, int64_t k, const float* const* rows, int r, float* dst);

// The slow path for arbitrary strides (e.g. a broadcast or sliced operand): a plain gather.
inline void gather_panel(int valid, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                         float* dst) {
  for (int64_t p = 0; p < k; ++p) {
    float* d = dst + p * r;
    for (int i = 0; i < valid; ++i) d[i] = src[i * rs + p * cs];
    for (int i = valid; i < r; ++i) d[i] = 0.0f;
  }
}

inline void pack_panels(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                        float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += r, dst += int64_t(r) * k) {
    const int valid = int(rows - r0 < r ? rows - r0 : r);
    const float* s = src + r0 * rs;
    if (rs == 1 || valid == 1) {
      copy_panel(valid, k, s, cs, r, dst);
    } else if (cs == 1 || k == 1) {
      const float* row_ptrs[kMaxPanelRows];
      for (int i = 0; i < valid; ++i) row_ptrs[i] = s + i * rs;
      transpose_rows(valid, k, row_ptrs, r, dst);
    } else {
      gather_panel(valid, k, s, rs, cs, r, dst);
    }
  }
}
