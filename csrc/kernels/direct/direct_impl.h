// The direct kernel's generic source (scalar and AVX2 tiers), included inside the tier's
// anonymous namespace: one output row at a time, taps along the row.
#pragma once

inline void direct_planes_impl(const float* x, int64_t c_count, int64_t x_plane, const float* w,
                               int oc_count, const DwPlaneShape& s, float* y, int64_t y_plane) {
  const int64_t taps = s.kh * s.kw;
  for (int o = 0; o < oc_count; ++o) {
    for (int64_t oh = 0; oh < s.oh; ++oh) {
      float* out = y + o * y_plane + oh * s.ow;
      for (int64_t ow = 0; ow < s.ow; ++ow) out[ow] = 0.0f;
      for (int64_t c = 0; c < c_count; ++c) {
        const float* wc = w + (o * c_count + c) * taps;
        for (int64_t i = 0; i < s.kh; ++i) {
          const int64_t ih = oh * s.stride_h - s.pad_top + i * s.dilation_h;
          if (ih < 0 || ih >= s.h) continue;
          const float* row = x + c * x_plane + ih * s.w;
          for (int64_t j = 0; j < s.kw; ++j) {
            const int64_t offset = j * s.dilation_w - s.pad_left;
            const int64_t lo = offset >= 0 ? 0 : (-offset + s.stride_w - 1) / s.stride_w;
            int64_t hi = s.w - 1 - offset < 0 ? 0 : (s.w - 1 - offset) / s.stride_w + 1;
            hi = hi < s.ow ? hi : s.ow;
            const float wv = wc[i * s.kw + j];
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] += wv * row[ow * s.stride_w + offset];
          }
        }
      }
    }
  }
}
