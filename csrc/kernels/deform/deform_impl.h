// The tier-independent parts of the deform kernels, included inside an anonymous namespace by
// each deform_<tier>.cpp: one plan entry computed one pixel at a time (DeformPlanFn's rule),
// and the walk of DeformRunFn (split the channel run at offset-group boundaries, hand each
// segment's four corner runs to the tier's `bilinear`).

// One plan entry: the bilinear sample of the point (y, x) of an h x w image, times `mask`.
inline DeformSample plan_entry(float y, float x, float mask, int64_t h, int64_t w) {
  DeformSample s = {{-1, -1, -1, -1}, {0.0f, 0.0f, 0.0f, 0.0f}};
  if (y != y || x != x) {  // NaN: no index is ever formed from it
    for (float& v : s.weight) v = __builtin_nanf("");
    return s;
  }
  if (y <= -1.0f || y >= float(h) || x <= -1.0f || x >= float(w)) {
    for (float& v : s.weight) v *= mask;  // 0, or NaN for a NaN mask (as torchvision)
    return s;
  }
  // floor without a libm call (the scalar tier has no roundss): y, x lie in (-1, size).
  const int64_t y0 = int64_t(y) - (y < 0.0f), x0 = int64_t(x) - (x < 0.0f);
  const float ly = y - float(y0), lx = x - float(x0), hy = 1.0f - ly, hx = 1.0f - lx;
  const bool top = y0 >= 0, bottom = y0 + 1 <= h - 1, left = x0 >= 0, right = x0 + 1 <= w - 1;
  if (top && left) s.corner[0] = int32_t(y0 * w + x0);
  if (top && right) s.corner[1] = int32_t(y0 * w + x0 + 1);
  if (bottom && left) s.corner[2] = int32_t((y0 + 1) * w + x0);
  if (bottom && right) s.corner[3] = int32_t((y0 + 1) * w + x0 + 1);
  s.weight[0] = hy * hx * mask;
  s.weight[1] = hy * lx * mask;
  s.weight[2] = ly * hx * mask;
  s.weight[3] = ly * lx * mask;
  return s;
}

// DeformPlanFn one pixel at a time.
inline void deform_plan_impl(int64_t count, float y, int64_t x0, int64_t x_step, const float* dy,
                             const float* dx, int64_t stride, const float* m, int64_t m_stride,
                             int64_t h, int64_t w, DeformSample* out, int64_t out_stride) {
  for (int64_t i = 0; i < count; ++i) {
    out[i * out_stride] = plan_entry(y + dy[i * stride], float(x0 + i * x_step) + dx[i * stride],
                                     m ? m[i * m_stride] : 1.0f, h, w);
  }
}

template <class Bilinear>
void deform_run_impl(int count, const float* x, int64_t pixel_stride, const DeformSample* samples,
                     int64_t sample_stride, int64_t group_channels, int64_t skip, int64_t c0,
                     int64_t len, const float* zeros, float* dst, int64_t dst_stride,
                     Bilinear bilinear) {
  for (int i = 0; i < count; ++i, samples += sample_stride, dst += dst_stride) {
    // Segments: the rest of the first group, then whole groups (no division per call).
    const DeformSample* s = samples;
    for (int64_t done = 0, seg = group_channels - skip; done < len;
         done += seg, seg = group_channels, ++s) {
      if (seg > len - done) seg = len - done;
      const float* corners[4];
      for (int k = 0; k < 4; ++k) {
        const int32_t p = s->corner[k];
        corners[k] = p >= 0 ? x + p * pixel_stride + c0 + done : zeros;
      }
      bilinear(seg, corners, s->weight, dst + done);
    }
  }
}
