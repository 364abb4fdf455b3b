// The pooling kernels' one source, included inside each tier's anonymous namespace (the
// including unit includes <cmath> and <cstdint> first). Unit-step loops are split out so the
// compiler vectorises the common cases (channels-last pixels, stride-1 rows) without a gather.
#pragma once

template <bool kUnitStep>
inline void max_run(int64_t n, const float* x, int64_t step, float* acc) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[kUnitStep ? i : i * step];
    acc[i] = (v > acc[i] || v != v) ? v : acc[i];
  }
}

template <bool kUnitStep>
inline void max_run_indexed(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx,
                            int64_t pos, int64_t pos_step) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[kUnitStep ? i : i * step];
    const bool take = v > acc[i] || v != v;
    acc[i] = take ? v : acc[i];
    idx[i] = take ? pos + i * pos_step : idx[i];
  }
}

inline void pool_max_impl(int64_t n, const float* x, int64_t step, float* acc, int64_t* idx,
                          int64_t pos, int64_t pos_step) {
  if (idx) {
    if (step == 1) return max_run_indexed<true>(n, x, 1, acc, idx, pos, pos_step);
    return max_run_indexed<false>(n, x, step, acc, idx, pos, pos_step);
  }
  if (step == 1) return max_run<true>(n, x, 1, acc);
  max_run<false>(n, x, step, acc);
}

template <bool kUnitStep, class F>
inline void sum_run(int64_t n, const float* x, int64_t step, float* acc, F f) {
  for (int64_t i = 0; i < n; ++i) acc[i] += f(x[kUnitStep ? i : i * step]);
}

template <class F>
inline void sum_any_step(int64_t n, const float* x, int64_t step, float* acc, F f) {
  if (step == 1) return sum_run<true>(n, x, 1, acc, f);
  sum_run<false>(n, x, step, acc, f);
}

inline void pool_sum_impl(int64_t n, const float* x, int64_t step, float power, float* acc) {
  if (power == 0.0f) return sum_any_step(n, x, step, acc, [](float v) { return v; });
  if (power == 1.0f) return sum_any_step(n, x, step, acc, [](float v) { return std::fabs(v); });
  if (power == 2.0f) return sum_any_step(n, x, step, acc, [](float v) { return v * v; });
  sum_any_step(n, x, step, acc, [power](float v) { return std::pow(std::fabs(v), power); });
}
