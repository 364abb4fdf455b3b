// A whole NCHW plane (or one output plane of a 3-D depthwise convolution) from a tier's row
// kernel, for tiers without a dedicated plane kernel. Included inside the tier's anonymous
// namespace after its `row` function is declared.
#pragma once

// Adds the taps of one input plane x (weights wk[i*kw + j]) to output row oh of y, in (i, j)
// order.
inline void add_plane_row(const float* x, const float* wk, const DwPlaneShape& s, int64_t oh,
                          float* out, DwRowFn row) {
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

inline void plane_by_rows(const float* x, const float* wk, const DwPlaneShape& s, float* y,
                          DwRowFn row) {
  for (int64_t oh = 0; oh < s.oh; ++oh) {
    float* out = y + oh * s.ow;
    for (int64_t ow = 0; ow < s.ow; ++ow) out[ow] = 0.0f;
    add_plane_row(x, wk, s, oh, out, row);
  }
}

// DwPlaneFn one plane at a time through a single-plane kernel plane(x, wk, s, y).
template <class Plane>
inline void planes_one_by_one(const float* x, const float* wk, const DwPlaneShape& s, int64_t first,
                              int64_t count, int64_t mult, float* y, Plane plane) {
  for (int64_t q = 0; q < count; ++q) {
    plane(x + (first + q) / mult * s.h * s.w, wk + q * s.kh * s.kw, s, y + q * s.oh * s.ow);
  }
}

// DwPlaneFn from the row kernel, plane by plane; the caller applies the epilogue.
inline bool planes_by_rows(const float* x, const float* wk, const DwPlaneShape& s, int64_t first,
                           int64_t count, int64_t mult, const DwEpilogue* ep, float* y,
                           DwRowFn row) {
  planes_one_by_one(x, wk, s, first, count, mult, y,
                    [row](const float* xq, const float* wq, const DwPlaneShape& sq, float* yq) {
                      plane_by_rows(xq, wq, sq, yq, row);
                    });
  return ep == nullptr;
}

// DwVolumeFn from the row kernel: each output row summed over the depth taps' planes.
inline void volume_by_rows(const float* const* planes, int64_t kd, const float* wk,
                           const DwPlaneShape& s, float* y, DwRowFn row) {
  const int64_t plane_taps = s.kh * s.kw;
  for (int64_t oh = 0; oh < s.oh; ++oh) {
    float* out = y + oh * s.ow;
    for (int64_t ow = 0; ow < s.ow; ++ow) out[ow] = 0.0f;
    for (int64_t a = 0; a < kd; ++a) {
      if (planes[a]) add_plane_row(planes[a], wk + a * plane_taps, s, oh, out, row);
    }
  }
}
