// Stochastic pooling kernels' one source, included inside each tier's anonymous namespace (the
// including unit includes <algorithm>, <cmath>, <cstdint> and <cstring> first). The drivers walk
// a plane (NCHW) or an output row (NHWC) and hand blocks of up to 16 outputs with the same taps
// to a tier's block function; windows cut by the image edge go one at a time through the
// scalar lane code, which every tier shares. Lanes are independent, so a tier's result is
// bitwise the scalar one as long as no product is fused into an add (pragmas below).
#pragma once

// Products stay separate from sums in every tier (GCC contracts a*b+c into an FMA across
// statements by default in C++, and -mfma tiers would then round differently from scalar).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

constexpr int kStochLanes = 16;

// SplitMix64's output function: a well-mixed 64-bit value with no state between draws.
inline uint64_t stoch_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Output o's uniform draw in [0, 1): the top 24 bits of SplitMix64(key ^ o), exact in float.
inline float stoch_uniform(uint64_t key, uint64_t o) {
  return float(uint32_t(stoch_mix(key ^ o) >> 40)) * 0x1p-24f;
}

inline uint32_t stoch_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// The wide path of a window whose float sums overflowed (values above ~1.8e19, or +inf): the
// same rules in double.
inline void stoch_wide(const StochGeometry& g, const float* const* src, int ntaps, int64_t at,
                       float u, float* value, int32_t* chosen) {
  double sum = 0.0, sum_sq = 0.0;
  for (int t = 0; t < ntaps; ++t) {
    const double v = src[t][at];
    sum += v;
    const double sq = v * v;
    sum_sq += sq;
  }
  if (!g.training) {
    *value = float(sum_sq / sum);
    return;
  }
  // The first tap whose cumulative weight passes u * sum; the last one if none does (+inf).
  const double target = double(u) * sum;
  double cumulative = 0.0;
  int t = 0;
  for (; t < ntaps - 1; ++t) {
    cumulative += src[t][at];
    if (cumulative > target) break;
  }
  *chosen = t;
  *value = src[t][at];
}

// One output from its taps src[t][at] (0 < ntaps, window order), the reference every tier's
// block follows lane by lane. Sums in float in tap order, from the first tap; eval: sum(a^2) /
// sum(a); training: the first tap whose running sum exceeds u * sum (the running sum ends at
// exactly sum > u * sum, and only a tap of nonzero weight can pass). A window without weight gives
// 0 and tap 0. Returns the largest bit pattern read.
inline uint32_t stoch_lane(const StochGeometry& g, const float* const* src, int ntaps, int64_t at,
                           uint64_t o, float* value, int32_t* chosen) {
  float s = src[0][at], q = s * s;
  uint32_t bits = stoch_bits(s);
  for (int t = 1; t < ntaps; ++t) {
    const float v = src[t][at];
    bits = std::max(bits, stoch_bits(v));
    s += v;
    const float sq = v * v;
    q += sq;
  }
  *value = 0.0f;
  *chosen = 0;
  if (!(s > 0.0f)) return bits;
  if (!g.training) {
    if (std::isfinite(q)) {
      *value = q / s;
    } else {
      stoch_wide(g, src, ntaps, at, 0.0f, value, chosen);
    }
    return bits;
  }
  const float u = stoch_uniform(g.key, o);
  if (!std::isfinite(s)) {
    stoch_wide(g, src, ntaps, at, u, value, chosen);
    return bits;
  }
  // Without an early exit: its branch, taken at a random tap, mispredicted about once per
  // output and cost more than the remaining taps.
  const float target = u * s;
  float c = 0.0f, pick_value = 0.0f;
  int32_t pick = 0;
  bool found = false;
  for (int t = 0; t < ntaps; ++t) {
    const float v = src[t][at];
    c = t ? c + v : v;
    const bool take = !found && c > target;
    pick = take ? t : pick;
    pick_value = take ? v : pick_value;
    found = found || take;
  }
  *chosen = pick;
  *value = pick_value;
  return bits;
}

// The block contract: `count` (<= 16) outputs, lane l's tap t at src[t][offset + l * step], its
// draw position o0 + l * o_step; y[l] and chosen[l] (tap index) receive the results. Returns
// a value above 0x7f800000 when a value read has its sign bit set or is a NaN, else one at most
// that (the scalar block: the largest bit pattern read). This is the scalar tiers' block.
inline uint32_t stoch_block_scalar(const StochGeometry& g, int count, const float* const* src,
                                   int ntaps, int64_t offset, int64_t step, uint64_t o0,
                                   uint64_t o_step, float* y, int32_t* chosen) {
  uint32_t bits = 0;
  for (int l = 0; l < count; ++l) {
    bits = std::max(bits, stoch_lane(g, src, ntaps, offset + l * step, o0 + uint64_t(l) * o_step,
                                     y + l, chosen + l));
  }
  return bits;
}

// One output whose window the image edge cuts (or any output, on paths without blocks): its
// taps inside the image, NCHW plane x.
inline uint32_t stoch_edge_output(const StochGeometry& g, const float* x, uint64_t o, int64_t oh,
                                  int64_t ow, float* y, int64_t* idx) {
  const float* src[kStochMaxTaps];
  int64_t pos[kStochMaxTaps];
  const int64_t h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
  int ntaps = 0;
  for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + g.kh, g.in_h); ++h) {
    for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + g.kw, g.in_w); ++w) {
      pos[ntaps] = h * g.in_w + w;
      src[ntaps] = x + pos[ntaps];
      ++ntaps;
    }
  }
  float value = 0.0f;
  int32_t chosen = 0;
  const uint32_t bits = ntaps ? stoch_lane(g, src, ntaps, 0, o, &value, &chosen) : 0;
  *y = value;
  if (idx) *idx = ntaps ? pos[chosen] : 0;
  return bits;
}

// NCHW plane: rows whose windows lie inside the image vertically run their inside columns
// through `block` 16 outputs at a time (lane l at input step sw), the rest one by one.
template <class Block>
uint32_t stoch_plane_impl(const StochGeometry& g, int64_t plane, const float* x, float* y,
                          int64_t* idx, Block block) {
  const int64_t W = g.in_w;
  // Columns [a, b) whose windows lie inside horizontally: ow * sw >= pl, ow * sw - pl + kw <= W.
  const int64_t a = std::min(g.out_w, (g.pl + g.sw - 1) / g.sw);
  const int64_t b =
      std::max(a, std::min(g.out_w, W - g.kw + g.pl >= 0 ? (W - g.kw + g.pl) / g.sw + 1 : 0));
  const int ntaps = int(g.kh * g.kw);
  const float* src[kStochMaxTaps];
  int64_t pos[kStochMaxTaps];
  int32_t chosen[kStochLanes];
  uint32_t bits = 0;
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const int64_t h0 = oh * g.sh - g.pt;
    const uint64_t o_row = uint64_t((plane * g.out_h + oh) * g.out_w);
    float* y_row = y + oh * g.out_w;
    int64_t* idx_row = idx ? idx + oh * g.out_w : nullptr;
    const bool inside = h0 >= 0 && h0 + g.kh <= g.in_h && a < b;
    const int64_t begin = inside ? a : g.out_w, end = inside ? b : g.out_w;
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      if (ow == begin) ow = end;
      if (ow == g.out_w) break;
      bits = std::max(bits, stoch_edge_output(g, x, o_row + uint64_t(ow), oh, ow, y_row + ow,
                                              idx_row ? idx_row + ow : nullptr));
    }
    if (!inside) continue;
    // Tap (i, j) of output a + k lies at pos[t] + k * sw.
    int t = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j, ++t) {
        pos[t] = (h0 + i) * W + j + a * g.sw - g.pl;
        src[t] = x + pos[t];
      }
    }
    for (int64_t ow = a; ow < b; ow += kStochLanes) {
      const int count = int(std::min<int64_t>(kStochLanes, b - ow));
      const int64_t offset = (ow - a) * g.sw;
      bits = std::max(bits, block(count, src, ntaps, offset, g.sw, o_row + uint64_t(ow), 1,
                                  y_row + ow, chosen));
      if (idx_row) {
        for (int l = 0; l < count; ++l) idx_row[ow + l] = pos[chosen[l]] + offset + l * g.sw;
      }
    }
  }
  return bits;
}

// NHWC output row oh of image n: each pixel's taps inside the image, the channels through
// `block` 16 at a time (lane l = channel, step 1; its draw position steps by a plane).
template <class Block>
uint32_t stoch_row_impl(const StochGeometry& g, int64_t n, int64_t oh, const float* x, float* y,
                        int64_t* idx, Block block) {
  const float* src[kStochMaxTaps];
  int64_t pos[kStochMaxTaps];
  int32_t chosen[kStochLanes];
  uint32_t bits = 0;
  const int64_t h0 = oh * g.sh - g.pt, out_plane = g.out_h * g.out_w;
  for (int64_t ow = 0; ow < g.out_w; ++ow) {
    const int64_t w0 = ow * g.sw - g.pl;
    int ntaps = 0;
    for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + g.kh, g.in_h); ++h) {
      for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + g.kw, g.in_w); ++w) {
        pos[ntaps] = h * g.in_w + w;
        src[ntaps] = x + pos[ntaps] * g.c;
        ++ntaps;
      }
    }
    float* y_px = y + ow * g.c;
    int64_t* idx_px = idx ? idx + ow * g.c : nullptr;
    if (ntaps == 0) {  // only a window wholly in the padding; the binding's checks exclude it
      std::fill(y_px, y_px + g.c, 0.0f);
      if (idx_px) std::fill(idx_px, idx_px + g.c, int64_t(0));
      continue;
    }
    for (int64_t c0 = 0; c0 < g.c; c0 += kStochLanes) {
      const int count = int(std::min<int64_t>(kStochLanes, g.c - c0));
      const uint64_t o = uint64_t(((n * g.c + c0) * g.out_h + oh) * g.out_w + ow);
      bits = std::max(bits,
                      block(count, src, ntaps, c0, 1, o, uint64_t(out_plane), y_px + c0, chosen));
      if (idx_px) {
        for (int l = 0; l < count; ++l) idx_px[c0 + l] = pos[chosen[l]];
      }
    }
  }
  return bits;
}

inline uint32_t stoch_max_bits_impl(int64_t n, const float* x) {
  uint32_t bits = 0;
  for (int64_t i = 0; i < n; ++i) bits = std::max(bits, stoch_bits(x[i]));
  return bits;
}
