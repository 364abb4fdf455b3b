// The pooling kernels' one source, included inside each tier's anonymous namespace (the
// including unit includes <cmath> and <cstdint> first). Steps 1 and 2 are compile-time
// constants in their own loops, so the compiler vectorises the common cases (channels-last
// pixels, stride-1 and stride-2 rows) with plain loads and permutes instead of gathers.
#pragma once

// kStep: the step when known at compile time (1, 2), else 0 and `step` is read.
template <int kStep>
inline void max_run(int64_t n, const float* x, int64_t step, float* acc) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i * (kStep ? kStep : step)];
    acc[i] = (v > acc[i] || v != v) ? v : acc[i];
  }
}

template <int kStep>
inline void max_run_indexed(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx,
                            int64_t pos, int64_t pos_step) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i * (kStep ? kStep : step)];
    const bool take = v > acc[i] || v != v;
    acc[i] = take ? v : acc[i];
    idx[i] = take ? pos + i * pos_step : idx[i];
  }
}

inline void pool_max_impl(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx,
                          int64_t pos, int64_t pos_step) {
  if (idx) {
    if (step == 1) return max_run_indexed<1>(n, x, 1, acc, idx, pos, pos_step);
    if (step == 2) return max_run_indexed<2>(n, x, 2, acc, idx, pos, pos_step);
    return max_run_indexed<0>(n, x, step, acc, idx, pos, pos_step);
  }
  if (step == 1) return max_run<1>(n, x, 1, acc);
  if (step == 2) return max_run<2>(n, x, 2, acc);
  max_run<0>(n, x, step, acc);
}

template <int kStep, class F>
inline void sum_run(int64_t n, const float* x, int64_t step, float* acc, F f) {
  for (int64_t i = 0; i < n; ++i) acc[i] += f(x[i * (kStep ? kStep : step)]);
}

template <class F>
inline void sum_any_step(int64_t n, const float* x, int64_t step, float* acc, F f) {
  if (step == 1) return sum_run<1>(n, x, 1, acc, f);
  if (step == 2) return sum_run<2>(n, x, 2, acc, f);
  sum_run<0>(n, x, step, acc, f);
}

inline void pool_sum_impl(int64_t n, const float* x, int64_t step, float power, float* acc) {
  if (power == 0.0f) return sum_any_step(n, x, step, acc, [](float v) { return v; });
  if (power == 1.0f) return sum_any_step(n, x, step, acc, [](float v) { return std::fabs(v); });
  if (power == 2.0f) return sum_any_step(n, x, step, acc, [](float v) { return v * v; });
  sum_any_step(n, x, step, acc, [power](float v) { return std::pow(std::fabs(v), power); });
}

constexpr int kLanes = 16;

inline void reduce_sum_impl(int64_t n, const float* x, float* acc) {
  if (n < 4 * kLanes) {
    // Short runs (a 7x7 plane of global pooling): four scalar chains, no lane array to spill
    // and reload (that cost more than the sum itself; perf).
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) s0 += x[i], s1 += x[i + 1], s2 += x[i + 2], s3 += x[i + 3];
    for (; i < n; ++i) s0 += x[i];
    *acc += (s0 + s1) + (s2 + s3);
    return;
  }
  float lane[kLanes] = {};
  const int64_t body = n / kLanes * kLanes;
  for (int64_t i = 0; i < body; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += x[i + l];
  }
  // A pairwise tree over the lanes (a fixed order, 4 adds deep instead of 16).
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  }
  float total = lane[0];
  for (int64_t i = body; i < n; ++i) total += x[i];
  *acc += total;
}

// Each lane keeps its own (max, position) by the sequential rule; the lanes are then combined
// so the result is what one sequential pass gives: the last NaN if any, else the largest value
// at its earliest position.
inline void reduce_max_impl(int64_t n, const float* x, float* acc, int64_t* idx, int64_t pos) {
  float best[kLanes];
  int64_t at[kLanes];
  for (int l = 0; l < kLanes; ++l) best[l] = -INFINITY, at[l] = -1;
  const int64_t body = n / kLanes * kLanes;
  for (int64_t i = 0; i < body; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = x[i + l];
      const bool take = v > best[l] || v != v;
      best[l] = take ? v : best[l];
      at[l] = take ? i + l : at[l];
    }
  }
  float m = *acc;
  int64_t where = -1;  // run position of the winner; -1: *acc stays
  bool nan = m != m;
  int64_t last_nan = -1;
  for (int l = 0; l < kLanes; ++l) {
    if (best[l] != best[l]) {
      last_nan = at[l] > last_nan ? at[l] : last_nan;
    } else if (!nan && (best[l] > m || (best[l] == m && where >= 0 && at[l] < where))) {
      m = best[l];
      where = at[l];
    }
  }
  if (last_nan >= 0) m = NAN, where = last_nan, nan = true;
  for (int64_t i = body; i < n; ++i) {  // the tail, in order after the body
    const float v = x[i];
    if (v > m || v != v) m = v, where = i;
  }
  *acc = m;
  if (idx && where >= 0) *idx = pos + where;
}

// Channels-last pixels: 16 channels at a time held in a lane array across all taps, stored
// once (accumulating tap by tap in the output stalled on the store and reload of every
// partial: perf). The AVX-512 tier replaces the common cases with intrinsics.
template <class F>
inline void taps_sum_impl(int64_t c, const float* const* taps, int ntaps, float scale, float* out,
                          F f) {
  int64_t j = 0;
  for (; j + kLanes <= c; j += kLanes) {
    float acc[kLanes] = {};
    for (int t = 0; t < ntaps; ++t) {
      const float* src = taps[t] + j;
      for (int l = 0; l < kLanes; ++l) acc[l] += f(src[l]);
    }
    for (int l = 0; l < kLanes; ++l) out[j + l] = acc[l] * scale;
  }
  for (; j < c; ++j) {
    float acc = 0.0f;
    for (int t = 0; t < ntaps; ++t) acc += f(taps[t][j]);
    out[j] = acc * scale;
  }
}

inline void pool_taps_sum_impl(int64_t c, const float* const* taps, int ntaps, float power,
                               float scale, float* out) {
  if (power == 0.0f) {
    return taps_sum_impl(c, taps, ntaps, scale, out, [](float v) { return v; });
  }
  if (power == 2.0f) {
    return taps_sum_impl(c, taps, ntaps, scale, out, [](float v) { return v * v; });
  }
  if (power == 1.0f) {
    return taps_sum_impl(c, taps, ntaps, scale, out, [](float v) { return std::fabs(v); });
  }
  taps_sum_impl(c, taps, ntaps, scale, out,
                [power](float v) { return std::pow(std::fabs(v), power); });
}

inline void pool_taps_max_impl(int64_t c, const float* const* taps, const int64_t* pos, int ntaps,
                               float* out, int64_t* idx, int64_t first) {
  int64_t j = 0;
  if (!idx) {  // values only: pos may be nullptr
    for (; j + kLanes <= c; j += kLanes) {
      float acc[kLanes];
      for (int l = 0; l < kLanes; ++l) acc[l] = -INFINITY;
      for (int t = 0; t < ntaps; ++t) {
        const float* src = taps[t] + j;
        for (int l = 0; l < kLanes; ++l) {
          acc[l] = src[l] > acc[l] || src[l] != src[l] ? src[l] : acc[l];
        }
      }
      for (int l = 0; l < kLanes; ++l) out[j + l] = acc[l];
    }
    for (; j < c; ++j) {
      float acc = -INFINITY;
      for (int t = 0; t < ntaps; ++t) {
        const float v = taps[t][j];
        if (v > acc || v != v) acc = v;
      }
      out[j] = acc;
    }
    return;
  }
  for (; j + kLanes <= c; j += kLanes) {
    float acc[kLanes];
    int64_t at[kLanes];
    for (int l = 0; l < kLanes; ++l) acc[l] = -INFINITY, at[l] = first;
    for (int t = 0; t < ntaps; ++t) {
      const float* src = taps[t] + j;
      for (int l = 0; l < kLanes; ++l) {
        const bool take = src[l] > acc[l] || src[l] != src[l];
        acc[l] = take ? src[l] : acc[l];
        at[l] = take ? pos[t] : at[l];
      }
    }
    for (int l = 0; l < kLanes; ++l) out[j + l] = acc[l];
    if (idx) {
      for (int l = 0; l < kLanes; ++l) idx[j + l] = at[l];
    }
  }
  for (; j < c; ++j) {
    float acc = -INFINITY;
    int64_t at = first;
    for (int t = 0; t < ntaps; ++t) {
      const float v = taps[t][j];
      if (v > acc || v != v) acc = v, at = pos[t];
    }
    out[j] = acc;
    if (idx) idx[j] = at;
  }
}

template <int kStep>
inline void row_run(int64_t n, const float* v, int64_t step, int64_t dilation, int k, bool is_max,
                    const float* col_scale, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    const float* src = v + j * (kStep ? kStep : step);
    float acc = is_max ? -INFINITY : 0.0f;
    for (int t = 0; t < k; ++t) {
      const float x = src[t * dilation];
      acc = !is_max ? acc + x : (x > acc || x != x) ? x : acc;
    }
    out[j] = is_max ? acc : acc * col_scale[j];
  }
}

inline void pool_row_impl(int64_t n, const float* v, int64_t step, int64_t dilation, int k,
                          bool is_max, const float* col_scale, float* out) {
  if (step == 1) return row_run<1>(n, v, 1, dilation, k, is_max, col_scale, out);
  if (step == 2) return row_run<2>(n, v, 2, dilation, k, is_max, col_scale, out);
  row_run<0>(n, v, step, dilation, k, is_max, col_scale, out);
}
