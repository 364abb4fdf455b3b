// A whole NCHW plane from a tier's row kernel (tiers without a dedicated plane kernel). Included
// inside the tier's anonymous namespace after its `row` function is declared.
#pragma once

inline void plane_by_rows(const float* x, const float* wk, const DwPlaneShape& s, float* y,
                          DwRowFn row) {
  for (int64_t oh = 0; oh < s.oh; ++oh) {
    float* out = y + oh * s.ow;
    for (int64_t ow = 0; ow < s.ow; ++ow) out[ow] = 0.0f;
    for (int64_t i = 0; i < s.kh; ++i) {
      const int64_t ih = oh * s.stride_h - s.pad_top + i * s.dilation_h;
      if (ih < 0 || ih >= s.h) continue;
      for (int64_t j = 0; j < s.kw; ++j) {
        const int64_t offset = j * s.dilation_w - s.pad_left;
        // Outputs ow whose tap reads inside the row: 0 <= ow*stride + offset < w.
        const int64_t lo = offset >= 0 ? 0 : (-offset + s.stride_w - 1) / s.stride_w;
        int64_t hi = s.w - 1 - offset < 0 ? 0 : (s.w - 1 - offset) / s.stride_w + 1;
        hi = hi < s.ow ? hi : s.ow;
        if (lo < hi) {
          row(hi - lo, x + ih * s.w + lo * s.stride_w + offset, s.stride_w, wk[i * s.kw + j],
              out + lo);
        }
      }
    }
  }
}
