// The elementwise kernels' one source, included inside each tier's anonymous namespace and
// compiled with that tier's flags (-O3 vectorises these loops: every lane is independent, and no
// sum is reassociated, so each tier's result is the same for any split of the work).
// The including unit includes <cstdint> and <cstring> first (this file sits inside a namespace).
#pragma once

// Lanes of the moment sums: two AVX-512 vectors, four AVX2 ones.
constexpr int kLanes = 32;

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// exp(x) to about 2 ulp for -87 <= x <= 88 (Cody-Waite reduction by ln 2, degree-6 polynomial,
// the exponent built in the bits). Beyond the float range the result is IEEE's: +inf above
// ln(FLT_MAX) (so sigmoid(-inf) = 1 / (1 + inf) = 0 and silu(-inf) = -inf / inf = NaN, as
// PyTorch), 0 below ln(FLT_MIN) (flushed: no denormal result); in between the argument is
// clamped so the exponent bits stay normal. Plain arithmetic so every tier vectorises it; NaN
// stays NaN.
inline float fast_exp(float x) {
  const float in = x;
  x = x > 88.0f ? 88.0f : (x < -87.0f ? -87.0f : x);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (no rounding instruction needed on SSE2).
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // x - n*ln2, ln2 = hi - lo
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // The exponent bits from n in [-126, 126]; a NaN x (whose p is NaN anyway) takes 0, as
  // converting NaN to an integer, and shifting a negative one, are undefined (UBSan).
  const int32_t e = n == n ? int32_t(n) : 0;
  const float y = p * bits_to_float(int32_t(uint32_t(e + 127) << 23));
  return in > 88.7228394f ? __builtin_inff() : (in < -87.3365479f ? 0.0f : y);
}

// The activations, as the micro-kernels define them (NaN propagates: comparisons are false).
inline float apply(float v, cnnfast::kernels::Activation act, float alpha) {
  using cnnfast::kernels::Activation;
  switch (act) {
    case Activation::none:
      return v;
    case Activation::relu:
      return v < 0.0f ? 0.0f : v;
    case Activation::relu6:
      return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
    case Activation::leaky_relu:
      return v < 0.0f ? v * alpha : v;
    case Activation::hardswish: {
      const float t = v + 3.0f;
      return v * (t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t)) * (1.0f / 6.0f);
    }
    case Activation::sigmoid:
      return 1.0f / (1.0f + fast_exp(-v));
    case Activation::tanh: {  // sign(v) * (1 - e) / (1 + e), e = exp(-2|v|) <= 1: no overflow
      const float e = fast_exp(-2.0f * (v < 0.0f ? -v : v));
      const float t = (1.0f - e) / (1.0f + e);
      return v < 0.0f ? -t : (v == v ? t : v);
    }
    case Activation::silu:
      return v / (1.0f + fast_exp(-v));
  }
  return v;
}

// One loop per activation, so the switch sits outside the vectorised loop.
template <class Fn>
inline void for_activation(cnnfast::kernels::Activation act, float alpha, Fn&& fn) {
  using cnnfast::kernels::Activation;
  switch (act) {
#define CNNFAST_CASE(a)                                              \
  case Activation::a:                                                \
    fn([alpha](float v) { return apply(v, Activation::a, alpha); }); \
    break;
    CNNFAST_CASE(none)
    CNNFAST_CASE(relu)
    CNNFAST_CASE(relu6)
    CNNFAST_CASE(leaky_relu)
    CNNFAST_CASE(hardswish)
    CNNFAST_CASE(sigmoid)
    CNNFAST_CASE(tanh)
    CNNFAST_CASE(silu)
#undef CNNFAST_CASE
  }
}

inline void scale_shift_impl(int64_t n, const float* x, cnnfast::kernels::ChannelAffine a,
                             cnnfast::kernels::Activation act, float alpha, float* y) {
  for_activation(act, alpha, [&](auto f) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(((x[i] - a.hi) - a.lo) * a.scale + a.shift);
  });
}

inline void scale_shift_rows_impl(int64_t rows, int64_t c, const float* x, const float* hi,
                                  const float* lo, const float* scale, const float* shift,
                                  cnnfast::kernels::Activation act, float alpha, float* y) {
  for_activation(act, alpha, [&](auto f) {
    for (int64_t p = 0; p < rows; ++p, x += c, y += c) {
      for (int64_t j = 0; j < c; ++j) y[j] = f(((x[j] - hi[j]) - lo[j]) * scale[j] + shift[j]);
    }
  });
}

// Sum of lanes in double (the cross-lane order is fixed).
inline double lane_total(const float* acc) {
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += double(acc[l]);
  return s;
}

inline void moments_impl(int64_t n, const float* x, double* mean, double* m2) {
  const float x0 = x[0];
  float acc[kLanes] = {};
  const int64_t body = n / kLanes * kLanes;
  for (int64_t i = 0; i < body; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] - x0;
  }
  double tail = 0.0;
  for (int64_t i = body; i < n; ++i) tail += double(x[i] - x0);
  const double dmean = (lane_total(acc) + tail) / double(n);
  // Second pass about the mean, still shifted: x - x0 is exact for x near x0, and d is small.
  const float d = float(dmean);
  float sq[kLanes] = {};
  for (int64_t i = 0; i < body; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = (x[i + l] - x0) - d;
      sq[l] += v * v;
    }
  }
  double sq_tail = 0.0;
  for (int64_t i = body; i < n; ++i) {
    const double v = double((x[i] - x0) - d);
    sq_tail += v * v;
  }
  // The sum is about x0 + d; about the exact mean it is smaller by n * (dmean - d)^2.
  const double err = dmean - double(d);
  *mean = double(x0) + dmean;
  *m2 = lane_total(sq) + sq_tail - double(n) * err * err;
  if (*m2 < 0.0) *m2 = 0.0;
}

inline void moments_rows_impl(int64_t rows, int64_t c, int64_t ld, const float* x, float* dmean,
                              float* m2) {
  for (int64_t j = 0; j < c; ++j) dmean[j] = 0.0f, m2[j] = 0.0f;
  for (int64_t p = 0; p < rows; ++p) {
    const float* row = x + p * ld;
    for (int64_t j = 0; j < c; ++j) dmean[j] += row[j] - x[j];
  }
  const float inv = 1.0f / float(rows);
  for (int64_t j = 0; j < c; ++j) dmean[j] *= inv;
  for (int64_t p = 0; p < rows; ++p) {
    const float* row = x + p * ld;
    for (int64_t j = 0; j < c; ++j) {
      const float v = (row[j] - x[j]) - dmean[j];
      m2[j] += v * v;
    }
  }
}

inline void transpose_impl(int64_t rows, int64_t cols, const float* src, int64_t src_ld, float* dst,
                           int64_t dst_ld) {
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t i = 0; i < rows; ++i) dst[j * dst_ld + i] = src[i * src_ld + j];
  }
}
