// The tier-independent walk of deform.h's DeformRunFn: split the channel run at offset-group
// boundaries and hand each segment's four corner runs to the tier's `bilinear` (len, corners,
// weights, dst). Included inside an anonymous namespace by each deform_<tier>.cpp.

template <class Bilinear>
void deform_run_impl(const float* x, int64_t pixel_stride, const DeformSample* samples,
                     int64_t sample_stride, int64_t group_channels, int64_t c0, int64_t len,
                     const float* zeros, float* dst, Bilinear bilinear) {
  for (int64_t c = c0; c < c0 + len;) {
    const int64_t o = c / group_channels;
    const int64_t end = (o + 1) * group_channels < c0 + len ? (o + 1) * group_channels : c0 + len;
    const DeformSample& s = samples[o * sample_stride];
    const float* corners[4];
    for (int k = 0; k < 4; ++k) {
      corners[k] = s.corner[k] >= 0 ? x + s.corner[k] * pixel_stride + c : zeros;
    }
    bilinear(end - c, corners, s.weight, dst + (c - c0));
    c = end;
  }
}
