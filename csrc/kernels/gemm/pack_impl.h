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
  if (rs == 1 && rows > r) {
    // Several panels of a unit-stride operand whose k steps lie far apart (an NCHW image's
    // channel planes, a transposed weight's rows 8-16 KiB apart): walk a few k steps across
    // every panel at a time, so each source row is read front to back and the prefetchers see
    // sequential lines. Panel by panel read 14-32 floats from each of kc rows in turn, rows that
    // shared L1/L2 sets: 16 % slower on (4096, 16, 512), 5 % on (64, 3136, 256) (one process).
    constexpr int64_t kStepsPerPass = 8;
    for (int64_t p0 = 0; p0 < k; p0 += kStepsPerPass) {
      const int64_t steps = k - p0 < kStepsPerPass ? k - p0 : kStepsPerPass;
      float* d = dst + p0 * r;
      for (int64_t r0 = 0; r0 < rows; r0 += r, d += int64_t(r) * k) {
        const int valid = int(rows - r0 < r ? rows - r0 : r);
        copy_panel(valid, steps, src + r0 + p0 * cs, cs, r, d);
      }
    }
    return;
  }
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
