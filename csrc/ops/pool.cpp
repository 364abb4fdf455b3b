// Pooling: validate -> output shape -> drivers. Every input is seen as 3 spatial axes (D, H, W),
// the unused outer ones of size 1, so 1-D, 2-D and 3-D share one code path.
// Max and average windows without indices run "rows first" (a window's (d, h) rows reduced
// before its w taps): channels-first through the tier's plane kernel (both reductions in
// registers) or a reduced row per output row; channels-last straight from the input (small
// windows at a w step of 2 or more) or through a reduced row. Narrow channels-first images run
// the channels-last code on a transposed copy. Indices, Lp pooling and huge windows keep the
// per-tap paths: channels-first (N, C, D, H, W) one task per (n, c) volume, each output row
// built tap by tap (one kernel call per tap over the outputs whose window reads it inside the
// image); channels-last (N, D, H, W, C) one task per (n, d, h) output row, each tap of a pixel
// one kernel call across the channels.
// Padded positions never enter a max or a sum; average divisors follow count_include_pad.
#include "ops/pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/conv2d.h"  // inside_range

namespace cnnfast::ops {
namespace {

struct Axis {
  int64_t in = 1, out = 1, k = 1, s = 1, d = 1, pb = 0, pe = 0;
  // First input index of output o's window, and its i-th tap.
  int64_t start(int64_t o) const { return o * s - pb; }
  // Adaptive bins (PyTorch): [floor(o*in/out), ceil((o+1)*in/out)).
  int64_t bin_begin(int64_t o) const { return o * in / out; }
  int64_t bin_end(int64_t o) const { return ((o + 1) * in + out - 1) / out; }
  // The taps [begin, end) of output o whose positions start(o) + t*d lie in [0, limit), in
  // closed form: a window may be far larger than the image (a 2^20 kernel with pads of half of
  // it over a few pixels is legal), and every loop over taps runs over this range only.
  static int64_t ceil_div(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }
  int64_t tap_begin(int64_t o) const { return ceil_div(-start(o), d); }
  int64_t tap_end(int64_t o, int64_t limit) const {
    return std::min(k, ceil_div(limit - start(o), d));
  }
  int64_t tap_end(int64_t o) const { return tap_end(o, in); }
  // Taps of output o inside the image, or (include_pad) inside the padded input.
  int64_t count(int64_t o, bool include_pad) const {
    if (include_pad) return tap_end(o, in + pe);  // start(o) >= -pb: no tap lies before
    return std::max<int64_t>(0, tap_end(o) - std::min(tap_begin(o), k));
  }
  // The first tap position >= 0 (PyTorch's initial max index, even when nothing is inside).
  int64_t first(int64_t o) const { return start(o) + tap_begin(o) * d; }
};

struct Geometry {
  int64_t n = 1, c = 1;
  Axis ax[3];  // D, H, W
  int64_t in_volume() const { return ax[0].in * ax[1].in * ax[2].in; }
  int64_t out_volume() const { return ax[0].out * ax[1].out * ax[2].out; }
};

int64_t pooled_size(const Axis& a, bool ceil_mode) {
  const int64_t span = a.in + a.pb + a.pe - a.d * (a.k - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceil_mode ? a.s - 1 : 0)) / a.s + 1;
  // PyTorch and ONNX: the last window must start inside the input or its begin padding.
  if (ceil_mode && (out - 1) * a.s >= a.in + a.pb) --out;
  return out;
}

// The used axes of a (D, H, W) array, as the caller wrote them: 3, (3, 3) or (3, 3, 3).
std::string tuple_of(const int64_t* v3, int dims) {
  const int64_t* v = v3 + 3 - dims;
  if (dims == 1) return std::to_string(v[0]);
  std::string s = "(";
  for (int i = 0; i < dims; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

Geometry geometry(const TensorView& x, const PoolParams& p) {
  Geometry g;
  g.n = x.shape[0];
  g.c = p.channels_last ? x.shape[x.ndim - 1] : x.shape[1];
  const int first = p.channels_last ? 1 : 2;
  for (int i = 3 - p.dims; i < 3; ++i) {
    Axis& a = g.ax[i];
    a.in = x.shape[first + i - (3 - p.dims)];
    a.k = p.kernel[i];
    a.s = p.stride[i];
    a.d = p.dilation[i];
    a.pb = p.pad_begin[i];
    a.pe = p.pad_end[i];
    a.out = p.adaptive ? p.output[i] : pooled_size(a, p.ceil_mode);
  }
  return g;
}

std::vector<int64_t> shape_with(const Geometry& g, const PoolParams& p) {
  std::vector<int64_t> shape{g.n};
  if (!p.channels_last) shape.push_back(g.c);
  for (int i = 3 - p.dims; i < 3; ++i) shape.push_back(g.ax[i].out);
  if (p.channels_last) shape.push_back(g.c);
  return shape;
}

// ---- uniform windows ----------------------------------------------------------------------

// f(pos) for each tap of output (od, oh, ow)'s window inside the image, in (d, h, w) order, pos
// the flat position within a channel's volume.
template <class F>
void for_each_tap(const Geometry& g, int64_t od, int64_t oh, int64_t ow, F&& f) {
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  const int64_t t0 = aw.tap_begin(ow), t1 = aw.tap_end(ow);
  for (int64_t i = ad.tap_begin(od), i1 = ad.tap_end(od); i < i1; ++i) {
    const int64_t id = ad.start(od) + i * ad.d;
    for (int64_t j = ah.tap_begin(oh), j1 = ah.tap_end(oh); j < j1; ++j) {
      const int64_t ih = ah.start(oh) + j * ah.d;
      for (int64_t t = t0; t < t1; ++t) f((id * ah.in + ih) * aw.in + aw.start(ow) + t * aw.d);
    }
  }
}

// Averages multiply by the reciprocal (within an ulp of dividing; a division per channel of
// every pixel cost as much as the loads on channels-last pools).
void finish(float* v, int64_t n, float divisor, const PoolParams& p) {
  if (p.mode == PoolMode::avg) {
    const float reciprocal = 1.0f / divisor;
    for (int64_t i = 0; i < n; ++i) v[i] *= reciprocal;
  } else if (p.mode == PoolMode::lp && p.power != 1.0f) {
    const float inv = 1.0f / p.power;
    for (int64_t i = 0; i < n; ++i) v[i] = p.power == 2.0f ? std::sqrt(v[i]) : std::pow(v[i], inv);
  }
}

float initial(const PoolParams& p) {
  return p.mode == PoolMode::max ? -std::numeric_limits<float>::infinity() : 0.0f;
}

void pool_channels_first(const float* x, const Geometry& g, const PoolParams& p, float* y,
                         int64_t* indices) {
  const auto& kern = kernels::pool_kernel_for(active_isa());
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  // The W taps that some output reads inside the image (at most min(k, in + ...) of them),
  // each with the outputs [lo, hi) whose window reads it there.
  struct WTap {
    int64_t t, lo, hi;
  };
  std::vector<WTap> w_taps;
  for (int64_t t = aw.tap_begin(aw.out - 1), t1 = aw.tap_end(0); t < t1; ++t) {
    const auto [lo, hi] = inside_range(t * aw.d - aw.pb, aw.s, aw.in, aw.out);
    if (lo < hi) w_taps.push_back({t, lo, hi});
  }
  std::vector<float> count_w(size_t(aw.out));
  std::vector<int64_t> first_w(size_t(aw.out));
  for (int64_t ow = 0; ow < aw.out; ++ow) {
    count_w[size_t(ow)] = float(aw.count(ow, p.count_include_pad));
    first_w[size_t(ow)] = aw.first(ow);
  }
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume();
  parallel_for_elements(g.n * g.c, g.n * g.c * (in_vol + out_vol), [&](int64_t plane, int) {
    const float* xp = x + plane * in_vol;
    for (int64_t od = 0; od < ad.out; ++od) {
      for (int64_t oh = 0; oh < ah.out; ++oh) {
        const int64_t o = (od * ah.out + oh) * aw.out;
        float* row = y + plane * out_vol + o;
        int64_t* idx = indices ? indices + plane * out_vol + o : nullptr;
        std::fill(row, row + aw.out, initial(p));
        if (idx) {
          const int64_t base = (ad.first(od) * ah.in + ah.first(oh)) * aw.in;
          for (int64_t ow = 0; ow < aw.out; ++ow) idx[ow] = base + first_w[size_t(ow)];
        }
        for (int64_t i = ad.tap_begin(od), i1 = ad.tap_end(od); i < i1; ++i) {
          const int64_t id = ad.start(od) + i * ad.d;
          for (int64_t j = ah.tap_begin(oh), j1 = ah.tap_end(oh); j < j1; ++j) {
            const int64_t ih = ah.start(oh) + j * ah.d;
            const int64_t row_pos = (id * ah.in + ih) * aw.in;
            for (const WTap& tap : w_taps) {
              const int64_t t = tap.t, lo = tap.lo, hi = tap.hi;
              const int64_t pos = row_pos + lo * aw.s + t * aw.d - aw.pb;
              if (p.mode == PoolMode::max) {
                kern.max(hi - lo, xp + pos, aw.s, row + lo, idx ? idx + lo : nullptr, pos, aw.s);
              } else {
                kern.sum(hi - lo, xp + pos, aw.s, p.power, row + lo);
              }
            }
          }
        }
        if (p.mode == PoolMode::avg && p.divisor_override) {
          finish(row, aw.out, float(p.divisor_override), p);
        } else if (p.mode == PoolMode::avg) {
          const float dh =
              float(ad.count(od, p.count_include_pad) * ah.count(oh, p.count_include_pad));
          for (int64_t ow = 0; ow < aw.out; ++ow) row[ow] *= 1.0f / (dh * count_w[size_t(ow)]);
        } else {
          finish(row, aw.out, 1.0f, p);
        }
      }
    }
  });
}

// Per output of one axis: the divisor factor and the first tap position (worked out once per
// call, not per pixel).
struct AxisTable {
  std::vector<int64_t> count, first;
  AxisTable(const Axis& a, bool include_pad) : count(size_t(a.out)), first(size_t(a.out)) {
    for (int64_t o = 0; o < a.out; ++o) {
      count[size_t(o)] = a.count(o, include_pad);
      first[size_t(o)] = a.first(o);
    }
  }
};

void pool_channels_last(const float* x, const Geometry& g, const PoolParams& p, float* y,
                        int64_t* indices) {
  const auto& kern = kernels::pool_kernel_for(active_isa());
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  const AxisTable td(ad, p.count_include_pad), th(ah, p.count_include_pad),
      tw(aw, p.count_include_pad);
  // The taps of a window that lie in the image: at most min(k, in) per axis. Sized by that, not
  // by the kernel: a 2^20 x 2^20 window over a small image (pads of half the kernel are legal)
  // would otherwise ask for 2^40 entries per task. The kernels count taps in an int.
  const int64_t inside = std::min(ad.k, ad.in) * std::min(ah.k, ah.in) * std::min(aw.k, aw.in);
  if (inside > std::numeric_limits<int32_t>::max()) {
    throw ValueError(
        "pooling: a window of more than 2^31 taps inside the image is not "
        "supported in the channels-last layout; use the channels-first one");
  }
  const size_t window = size_t(inside);
  parallel_for_elements(
      g.n * ad.out * ah.out, g.n * g.c * (g.in_volume() + g.out_volume()), [&](int64_t task, int) {
        const int64_t n = task / (ad.out * ah.out), od = task / ah.out % ad.out, oh = task % ah.out;
        std::vector<const float*> taps(window);
        std::vector<int64_t> positions(window);
        for (int64_t ow = 0; ow < aw.out; ++ow) {
          int ntaps = 0;
          for_each_tap(g, od, oh, ow, [&](int64_t pos) {
            positions[size_t(ntaps)] = pos;
            taps[size_t(ntaps++)] = x + (n * g.in_volume() + pos) * g.c;
          });
          const int64_t o = ((task * aw.out) + ow) * g.c;
          if (p.mode == PoolMode::max) {
            const int64_t first = (td.first[size_t(od)] * ah.in + th.first[size_t(oh)]) * aw.in +
                                  tw.first[size_t(ow)];
            kern.taps_max(g.c, taps.data(), positions.data(), ntaps, y + o,
                          indices ? indices + o : nullptr, first);
            continue;
          }
          const float divisor =
              p.divisor_override
                  ? float(p.divisor_override)
                  : float(td.count[size_t(od)] * th.count[size_t(oh)] * tw.count[size_t(ow)]);
          kern.taps_sum(g.c, taps.data(), ntaps, p.power,
                        p.mode == PoolMode::avg ? 1.0f / divisor : 1.0f, y + o);
          if (p.mode == PoolMode::lp) finish(y + o, g.c, 1.0f, p);
        }
      });
}

// ---- uniform windows, rows first ----------------------------------------------------------

// Max and average windows without indices, in either layout: each output row first reduces its
// window's (d, h) input rows into one row v (one contiguous pass over each input row, vectors
// across pixels or channels), then reduces v's w taps, which sit in L1, in registers. The
// per-tap passes of pool_channels_first read every input row kh times at a stride (NCHW max
// and average pools ran at 3-53 % of the copy bandwidth), and pool_channels_last builds a tap
// list per pixel.
// A max of row maxima is the window's max (the NaN rule included), and sums run in the same
// tap order in both layouts (rows, then w taps, each from zero; a padded tap adds +0), so the
// two layouts stay bitwise equal up to the sign of a zero average.
//
// Channels-first rows are padded in the workspace so that one kernel call serves the whole
// output row; windows whose padding is longer than the image take the per-tap path instead.
// The reduced row lives in per-thread workspace: longer rows (a 2^31-element row pooled at a
// huge stride) keep the paths that read the input in place.
constexpr int64_t kMaxRowFloats = int64_t(1) << 20;

bool rows_first(const Geometry& g, const PoolParams& p, const int64_t* indices) {
  const Axis& aw = g.ax[2];
  if (aw.in * (p.channels_last ? g.c : 1) > kMaxRowFloats) return false;
  const int64_t rows = std::min(g.ax[0].k, g.ax[0].in) * std::min(g.ax[1].k, g.ax[1].in);
  const int64_t padded = (aw.out - 1) * aw.s + (aw.k - 1) * aw.d + 1;
  return !indices && (p.mode == PoolMode::max || p.mode == PoolMode::avg) &&
         rows <= std::numeric_limits<int32_t>::max() &&
         aw.k <= std::numeric_limits<int32_t>::max() &&
         (p.channels_last || padded <= 2 * aw.in + 64);
}

constexpr int kRowSlot = 0, kRowPointersSlot = 1, kScalesSlot = 4;

// Channels-last windows of at most this many taps read every pixel's taps straight from the
// input (PoolRowLastFn). Each tap is then a stream of its own through the input, and a 2048@7x7
// global average (49 taps) ran at half the speed of the reduced row (29 against 60 GB/s at
// batch 8, 1 thread).
constexpr int64_t kDirectMaxTaps = 16;

// What pool_rows_first's two layouts share: the averages' divisors and each output row's window
// rows.
struct RowsFirst {
  const Geometry& g;
  const PoolParams& p;
  const kernels::PoolKernel& kern;
  AxisTable td, th, tw;
  size_t max_taps;  // window rows, or w taps, inside the input at most
  RowsFirst(const Geometry& g, const PoolParams& p)
      : g(g),
        p(p),
        kern(kernels::pool_kernel_for(active_isa())),
        td(g.ax[0], p.count_include_pad),
        th(g.ax[1], p.count_include_pad),
        tw(g.ax[2], p.count_include_pad),
        max_taps(size_t(std::max(std::min(g.ax[0].k, g.ax[0].in) * std::min(g.ax[1].k, g.ax[1].in),
                                 std::min(g.ax[2].k, g.ax[2].in)))) {}
  bool is_max() const { return p.mode == PoolMode::max; }
  // scales[ow] = 1 / divisor for the outputs of row (od, oh), one rounding as in the per-tap
  // paths (a product of two rounded reciprocals was an ulp off, e.g. 13 / 9). Rows with the same
  // d-h count share the array: it is rebuilt only when that count changes (*for_count holds the
  // count it was built for; -1 on a task's first row).
  void row_scales(int64_t od, int64_t oh, float* scales, int64_t* for_count) const {
    const int64_t dh = p.divisor_override ? 0 : td.count[size_t(od)] * th.count[size_t(oh)];
    if (dh == *for_count) return;
    for (int64_t ow = 0; ow < g.ax[2].out; ++ow) {
      scales[ow] =
          1.0f / float(p.divisor_override ? p.divisor_override : dh * tw.count[size_t(ow)]);
    }
    *for_count = dh;
  }
  // Output row (od, oh)'s window rows inside the input (`row_len` floats each, from `xt`) into
  // rows; returns how many.
  int window_rows(const float* xt, int64_t row_len, int64_t od, int64_t oh,
                  const float** rows) const {
    int count = 0;
    for_each_window_row(od, oh, [&](int64_t row) { rows[count++] = xt + row * row_len; });
    return count;
  }
  // f(row) for each of output row (od, oh)'s window rows inside the input, row = id * H + ih.
  template <class F>
  void for_each_window_row(int64_t od, int64_t oh, F&& f) const {
    const Axis &ad = g.ax[0], &ah = g.ax[1];
    for (int64_t i = ad.tap_begin(od), i1 = ad.tap_end(od); i < i1; ++i) {
      const int64_t id = ad.start(od) + i * ad.d;
      for (int64_t j = ah.tap_begin(oh), j1 = ah.tap_end(oh); j < j1; ++j) {
        f(id * ah.in + ah.start(oh) + j * ah.d);
      }
    }
  }
  // v[0, len) = the max or sum of `count` rows (init when there are none).
  void reduce_rows(int64_t len, const float* const* rows, int count, float* v) const {
    if (count == 0) {
      std::fill(v, v + len, initial(p));
    } else if (is_max()) {
      kern.taps_max(len, rows, nullptr, count, v, nullptr, 0);
    } else {
      kern.taps_sum(len, rows, count, 0.0f, 1.0f, v);
    }
  }
};

// Channels-first through the tier's plane kernel (both reductions in registers), when it has
// one for this window: the window rows' offsets and the averages' scales are worked out once
// per call, then one kernel call per (n, c) plane. The reduced row in memory cost a store and
// a reload per row, an indirect call and a tap-range division per output row. Against it (1
// thread, AVX-512, one process, alternating, batch 1 / 8): ResNet max 3x3/2 on 64@112^2
// 1.11x / 1.35x, VGG max 2x2/2 1.43x / 1.31x, AlexNet 3x3/2 1.50x / 1.56x, Inception avg
// 3x3/1 2.14x / 2.19x, DenseNet avg 2x2/2 2.24x / 2.19x, max_pool3d 2x2x2 1.56x / 1.29x.
bool plane_kernel_serves(const RowsFirst& rf) {
  const Axis& aw = rf.g.ax[2];
  return rf.kern.plane && aw.s <= 2 && aw.d == 1 && aw.k <= kernels::kPoolPlaneMaxTaps;
}

void plane_kernel_channels_first(const float* x, const RowsFirst& rf, float* y) {
  const Geometry& g = rf.g;
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  const int64_t out_rows = ad.out * ah.out;
  const int max_rows = int(rf.max_taps);
  std::vector<int64_t> offsets(size_t(out_rows) * size_t(max_rows));
  std::vector<int> counts(static_cast<size_t>(out_rows));
  // Averages: one scale row per distinct (d, h) tap count (the edges and the interior).
  std::vector<const float*> scales(static_cast<size_t>(out_rows), nullptr);
  std::vector<std::vector<float>> scale_rows;
  std::vector<int64_t> scale_counts;
  for (int64_t od = 0, o = 0; od < ad.out; ++od) {
    for (int64_t oh = 0; oh < ah.out; ++oh, ++o) {
      int count = 0;
      rf.for_each_window_row(
          od, oh, [&](int64_t row) { offsets[size_t(o * max_rows + count++)] = row * aw.in; });
      counts[size_t(o)] = count;
      if (rf.is_max()) continue;
      const int64_t dh =
          rf.p.divisor_override ? 0 : rf.td.count[size_t(od)] * rf.th.count[size_t(oh)];
      size_t i = 0;
      while (i < scale_counts.size() && scale_counts[i] != dh) ++i;
      if (i == scale_counts.size()) {
        scale_counts.push_back(dh);
        scale_rows.emplace_back(size_t(aw.out));
        int64_t built = -1;
        rf.row_scales(od, oh, scale_rows.back().data(), &built);
      }
      scales[size_t(o)] = scale_rows[i].data();
    }
  }
  const kernels::PoolPlane plane{out_rows,       aw.out,        aw.in,        -aw.pb,
                                 aw.s,           int(aw.k),     rf.is_max(),  max_rows,
                                 offsets.data(), counts.data(), scales.data()};
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume();
  parallel_for_elements(g.n * g.c, g.n * g.c * (in_vol + out_vol), [&](int64_t task, int) {
    rf.kern.plane(plane, x + task * in_vol, y + task * out_vol);
  });
}

// Channels-first planes narrower than this, pooled at stride 1 to their own size, run as one
// flat row (PoolFlatFn): a 35-wide row is 3 partly filled vectors and per-row work, the flat
// 35x35 plane 77 full vectors. Inception's average 3x3/1 on 192@35x35 (batch 1, 1 thread,
// AVX-512, alternating processes): 114 -> 60 us, batch 8 864 -> 398 us; a 5x5/1 max on
// 256@20x20 108 -> 57 us.
constexpr int64_t kFlatMaxWidth = 64;
constexpr int64_t kFlatMaxPlane = 1 << 16;

bool flat_kernel_serves(const RowsFirst& rf) {
  const Geometry& g = rf.g;
  const auto same_size = [](const Axis& a) {
    return a.s == 1 && a.d == 1 && a.k % 2 == 1 && a.pb == a.k / 2 && a.pe == a.k / 2;
  };
  return rf.kern.flat && g.ax[0].in == 1 && g.ax[0].k == 1 && same_size(g.ax[1]) &&
         same_size(g.ax[2]) && g.ax[1].k <= kernels::kPoolPlaneMaxTaps && g.ax[2].k == g.ax[1].k &&
         g.ax[2].in < kFlatMaxWidth && g.ax[1].in * g.ax[2].in <= kFlatMaxPlane;
}

void flat_kernel_channels_first(const float* x, const RowsFirst& rf, float* y) {
  const Geometry& g = rf.g;
  const int64_t h = g.ax[1].in, w = g.ax[2].in, hw = h * w;
  const int k = int(g.ax[1].k), pad = k / 2;
  const int64_t out_vectors = (hw + 15) / 16, reduced = kernels::pool_flat_vectors(hw);
  const auto lanes = [](int64_t lo, int64_t hi) {  // bits [max(lo, 0), min(hi, 16))
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, 16);
    return hi <= lo ? uint16_t(0) : uint16_t(((1u << hi) - 1) & ~((1u << lo) - 1));
  };
  std::vector<uint16_t> row_masks(size_t(reduced * k)), tap_masks(size_t(out_vectors * k));
  for (int64_t v = 0; v < reduced; ++v) {
    for (int r = 0; r < k; ++r) {  // positions 16v - pad + L + (r - pad)*w inside [0, hw)
      const int64_t first = 16 * v - pad + (r - pad) * w;
      row_masks[size_t(v * k + r)] = lanes(-first, hw - first);
    }
  }
  // Per output vector, the lanes at a row's first and last column, from 8 lanes before the
  // vector to 8 after it (bit 8 + L for lane L): tap t < pad misses the lanes within pad - t
  // columns after a row's start, tap t > pad those within t - pad before its end.
  for (int64_t i = 0, col0 = 0; i < out_vectors; ++i, col0 = (col0 + 16) % w) {
    uint64_t starts = 0, ends = 0;
    for (int64_t bit = 0, col = ((col0 - 8) % w + w) % w; bit < 32; ++bit, col = (col + 1) % w) {
      if (col == 0) starts |= uint64_t(1) << bit;
      if (col == w - 1) ends |= uint64_t(1) << bit;
    }
    const uint32_t inside = lanes(0, hw - 16 * i);
    for (int t = 0; t < k; ++t) {
      uint64_t missing = 0;
      for (int c = 0; c < pad - t; ++c) missing |= starts << c;
      for (int c = 0; c < t - pad; ++c) missing |= ends >> c;
      tap_masks[size_t(i * k + t)] = uint16_t(inside & ~uint32_t(missing >> 8));
    }
  }
  std::vector<float> scales(rf.is_max() ? 0 : size_t(hw));
  for (int64_t oh = 0; !rf.is_max() && oh < h; ++oh) {
    int64_t built = -1;  // each row has its own place in the array: always build it
    rf.row_scales(0, oh, scales.data() + oh * w, &built);
  }
  const kernels::PoolFlat flat{
      h, w, k, rf.is_max(), row_masks.data(), tap_masks.data(), scales.data()};
  parallel_for_elements(g.n * g.c, g.n * g.c * 2 * hw, [&](int64_t task, int) {
    rf.kern.flat(flat, x + task * hw, y + task * hw);
  });
}

// Channels-first: a task per (n, c) plane, an output row at a time.
void rows_first_channels_first(const float* x, const RowsFirst& rf, float* y) {
  if (flat_kernel_serves(rf)) return flat_kernel_channels_first(x, rf, y);
  if (plane_kernel_serves(rf)) return plane_kernel_channels_first(x, rf, y);
  const Geometry& g = rf.g;
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  // The reduced row v sits at pb in a padded row holding every position a window reads, so one
  // kernel call serves the whole output row.
  const int64_t pad_end =
      std::max<int64_t>(0, (aw.out - 1) * aw.s + (aw.k - 1) * aw.d + 1 - aw.pb - aw.in);
  const int64_t padded_len = aw.pb + aw.in + pad_end;
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume();
  parallel_for_elements(g.n * g.c, g.n * g.c * (in_vol + out_vol), [&](int64_t plane, int) {
    float* padded =
        static_cast<float*>(thread_workspace(kRowSlot, sizeof(float) * size_t(padded_len)));
    const float** rows = static_cast<const float**>(
        thread_workspace(kRowPointersSlot, sizeof(const float*) * rf.max_taps));
    float* scales =
        static_cast<float*>(thread_workspace(kScalesSlot, sizeof(float) * size_t(aw.out)));
    int64_t scales_for = -1;
    float* v = padded + aw.pb;
    std::fill(padded, v, initial(rf.p));
    std::fill(v + aw.in, padded + padded_len, initial(rf.p));
    for (int64_t od = 0; od < ad.out; ++od) {
      for (int64_t oh = 0; oh < ah.out; ++oh) {
        rf.reduce_rows(aw.in, rows, rf.window_rows(x + plane * in_vol, aw.in, od, oh, rows), v);
        if (!rf.is_max()) rf.row_scales(od, oh, scales, &scales_for);
        rf.kern.row(aw.out, padded, aw.s, aw.d, int(aw.k), rf.is_max(), scales,
                    y + plane * out_vol + (od * ah.out + oh) * aw.out);
      }
    }
  });
}

// Channels-last: a task per output row; a pixel's w taps are c-long runs of the reduced row.
void rows_first_channels_last(const float* x, const RowsFirst& rf, float* y) {
  const Geometry& g = rf.g;
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  const int64_t row_len = aw.in * g.c;
  // Windows at a w step of 2 or more read each pixel's taps straight from the input through the
  // tier's row kernel (no reduced row stored and reloaded): against the reduced row, 1 thread,
  // AVX-512, batch 1 / 8: ResNet max 3x3/2 1.39x / 1.37x, VGG max 2x2/2 1.50x / 1.42x, AlexNet
  // 3x3/2 1.22x / 1.27x, DenseNet avg 2x2/2 1.31x / 1.39x, max_pool3d 2x2x2 1.33x / 1.19x. At
  // step 1 the reduced row serves k outputs per position, and won (Inception avg 3x3/1 0.92x).
  // Larger windows keep the reduced row (kDirectMaxTaps).
  const int64_t window = std::min(ad.k, ad.in) * std::min(ah.k, ah.in) * std::min(aw.k, aw.in);
  const bool direct = rf.kern.row_last && aw.d == 1 && aw.s >= 2 && window <= kDirectMaxTaps;
  std::vector<int64_t> tap_begin, tap_end;  // each pixel's w taps inside the input
  if (direct) {
    for (int64_t ow = 0; ow < aw.out; ++ow) {
      tap_begin.push_back(aw.start(ow) + aw.tap_begin(ow));
      tap_end.push_back(aw.start(ow) + aw.tap_end(ow));
    }
  }
  parallel_for_elements(
      g.n * ad.out * ah.out, g.n * g.c * (g.in_volume() + g.out_volume()), [&](int64_t task, int) {
        const int64_t n = task / (ad.out * ah.out), od = task / ah.out % ad.out, oh = task % ah.out;
        float* v = static_cast<float*>(thread_workspace(kRowSlot, sizeof(float) * size_t(row_len)));
        const float** taps = static_cast<const float**>(
            thread_workspace(kRowPointersSlot, sizeof(const float*) * rf.max_taps));
        const int nrows = rf.window_rows(x + n * g.in_volume() * g.c, row_len, od, oh, taps);
        if (direct) {
          float* scales =
              static_cast<float*>(thread_workspace(kScalesSlot, sizeof(float) * size_t(aw.out)));
          int64_t scales_for = -1;
          if (!rf.is_max()) rf.row_scales(od, oh, scales, &scales_for);
          rf.kern.row_last(g.c, taps, nrows, aw.out, tap_begin.data(), tap_end.data(), rf.is_max(),
                           scales, y + task * aw.out * g.c);
          return;
        }
        const float* row = nrows == 1 ? taps[0] : v;  // a single row is read in place
        if (nrows != 1) rf.reduce_rows(row_len, taps, nrows, v);
        float* scales =
            static_cast<float*>(thread_workspace(kScalesSlot, sizeof(float) * size_t(aw.out)));
        int64_t scales_for = -1;
        if (!rf.is_max()) rf.row_scales(od, oh, scales, &scales_for);
        float* out = y + task * aw.out * g.c;
        for (int64_t ow = 0; ow < aw.out; ++ow, out += g.c) {
          int ntaps = 0;
          for (int64_t t = aw.tap_begin(ow), t1 = aw.tap_end(ow); t < t1; ++t) {
            taps[ntaps++] = row + (aw.start(ow) + t * aw.d) * g.c;
          }
          if (rf.is_max()) {
            rf.kern.taps_max(g.c, taps, nullptr, ntaps, out, nullptr, 0);
          } else {
            rf.kern.taps_sum(g.c, taps, ntaps, 0.0f, scales[ow], out);
          }
        }
      });
}

void pool_rows_first(const float* x, const Geometry& g, const PoolParams& p, float* y) {
  const RowsFirst rf(g, p);
  (p.channels_last ? rows_first_channels_last : rows_first_channels_first)(x, rf, y);
}

// ---- adaptive windows ---------------------------------------------------------------------

// Stochastic pooling's window (d * h * w taps) limit: a stack array per output.
constexpr int kMaxStochasticTaps = 1024;

// Runs shorter than this are reduced inline rather than by a kernel call.
constexpr int64_t kShortRun = 16;

// Each axis's adaptive bins, worked out once per call (two integer divisions per bin edge
// cost more than a 7x7 global pooling's sums).
struct Bins {
  std::vector<int64_t> begin, end;
  explicit Bins(const Axis& a) : begin(size_t(a.out)), end(size_t(a.out)) {
    for (int64_t o = 0; o < a.out; ++o)
      begin[size_t(o)] = a.bin_begin(o), end[size_t(o)] = a.bin_end(o);
  }
};

// Averages over large bins sum in float chunks of kSumChunk values combined in double: a
// float sum (even over the kernels' 16 lanes) stops growing once it passes 2^24 times its
// values (a global average over 2^31 ones returned 0.25).
constexpr int64_t kSumChunk = 4096;

double run_sum(const kernels::PoolKernel& kern, int64_t n, const float* x) {
  double total = 0.0;
  for (int64_t i = 0; i < n; i += kSumChunk) {
    float acc = 0.0f;
    kern.reduce_sum(std::min(kSumChunk, n - i), x + i, &acc);
    total += double(acc);
  }
  return total;
}

void adaptive_channels_first(const float* x, const Geometry& g, const PoolParams& p, float* y,
                             int64_t* indices) {
  const auto& kern = kernels::pool_kernel_for(active_isa());
  const Bins bd(g.ax[0]), bh(g.ax[1]), bw(g.ax[2]);
  const int64_t in_h = g.ax[1].in, in_w = g.ax[2].in;
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume();
  if (out_vol == 1) {  // global pooling: one run per channel, channels in blocks per task
    constexpr int64_t kPlanesPerTask = 64;
    const int64_t planes = g.n * g.c;
    // Planes whose float sums stay exact enough, 16 at a time when the tier can (a call and a
    // horizontal sum per plane cost more than a 7x7 plane's loads: 2048@7x7 ran at 20 GB/s).
    const bool blocks = kern.reduce_planes && !indices && in_vol <= kSumChunk;
    parallel_for_elements(
        (planes + kPlanesPerTask - 1) / kPlanesPerTask, planes * in_vol, [&](int64_t task, int) {
          const int64_t end = std::min(planes, (task + 1) * kPlanesPerTask);
          if (blocks) {
            const int64_t first = task * kPlanesPerTask;
            kern.reduce_planes(end - first, in_vol, x + first * in_vol, p.mode == PoolMode::max,
                               y + first);
            for (int64_t plane = first; p.mode == PoolMode::avg && plane < end; ++plane) {
              y[plane] = float(double(y[plane]) / double(in_vol));
            }
            return;
          }
          for (int64_t plane = task * kPlanesPerTask; plane < end; ++plane) {
            float acc = initial(p);
            int64_t arg = 0;
            if (p.mode == PoolMode::max) {
              kern.reduce_max(in_vol, x + plane * in_vol, &acc, indices ? &arg : nullptr, 0);
              if (indices) indices[plane] = arg;
            } else {
              acc = float(run_sum(kern, in_vol, x + plane * in_vol) / double(in_vol));
            }
            y[plane] = acc;
          }
        });
    return;
  }
  parallel_for_elements(g.n * g.c, g.n * g.c * (in_vol + out_vol), [&](int64_t plane, int) {
    const float* xp = x + plane * in_vol;
    int64_t o = plane * out_vol;
    for (size_t od = 0; od < bd.begin.size(); ++od) {
      for (size_t oh = 0; oh < bh.begin.size(); ++oh) {
        for (size_t ow = 0; ow < bw.begin.size(); ++ow, ++o) {
          // One contiguous run per bin row, or one for the whole bin when it spans full rows
          // (global pooling: one run per channel).
          const int64_t w0 = bw.begin[ow], w1 = bw.end[ow], h0 = bh.begin[oh], h1 = bh.end[oh];
          const bool full_rows = w0 == 0 && w1 == in_w;
          float acc = initial(p);
          double sum = 0.0;  // average pooling
          int64_t arg = (bd.begin[od] * in_h + h0) * in_w + w0;
          for (int64_t id = bd.begin[od]; id < bd.end[od]; ++id) {
            for (int64_t ih = h0; ih < h1; ih += full_rows ? h1 - h0 : 1) {
              const int64_t start = (id * in_h + ih) * in_w + w0;
              const int64_t len = full_rows ? (h1 - ih) * in_w : w1 - w0;
              if (len < kShortRun) {  // a few values: a call costs more than the loop
                for (int64_t i = start; i < start + len; ++i) {
                  const float v = xp[i];
                  if (p.mode != PoolMode::max) {
                    sum += double(v);
                  } else if (v > acc || v != v) {
                    acc = v, arg = i;
                  }
                }
              } else if (p.mode == PoolMode::max) {
                kern.reduce_max(len, xp + start, &acc, indices ? &arg : nullptr, start);
              } else {
                sum += run_sum(kern, len, xp + start);
              }
            }
          }
          if (p.mode == PoolMode::avg) {
            acc = float(sum / double((bd.end[od] - bd.begin[od]) * (h1 - h0) * (w1 - w0)));
          }
          y[o] = acc;
          if (indices) indices[o] = arg;
        }
      }
    }
  });
}

void adaptive_channels_last(const float* x, const Geometry& g, const PoolParams& p, float* y,
                            int64_t* indices) {
  const auto& kern = kernels::pool_kernel_for(active_isa());
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  parallel_for_elements(
      g.n * ad.out * ah.out, g.n * g.c * (g.in_volume() + g.out_volume()), [&](int64_t task, int) {
        const int64_t n = task / (ad.out * ah.out), od = task / ah.out % ad.out, oh = task % ah.out;
        std::vector<double> total(p.mode == PoolMode::avg ? size_t(g.c) : 0);
        for (int64_t ow = 0; ow < aw.out; ++ow) {
          const int64_t o = ((task * aw.out) + ow) * g.c;
          float* px = y + o;
          int64_t* idx = indices ? indices + o : nullptr;
          std::fill(px, px + g.c, initial(p));
          if (idx) {
            std::fill(idx, idx + g.c,
                      (ad.bin_begin(od) * ah.in + ah.bin_begin(oh)) * aw.in + aw.bin_begin(ow));
          }
          int64_t count = 0;
          for (int64_t id = ad.bin_begin(od); id < ad.bin_end(od); ++id) {
            for (int64_t ih = ah.bin_begin(oh); ih < ah.bin_end(oh); ++ih) {
              for (int64_t iw = aw.bin_begin(ow); iw < aw.bin_end(ow); ++iw, ++count) {
                const int64_t pos = (id * ah.in + ih) * aw.in + iw;
                const float* src = x + (n * g.in_volume() + pos) * g.c;
                if (p.mode == PoolMode::max) {
                  kern.max(g.c, src, 1, px, idx, pos, 0);
                } else {
                  kern.sum(g.c, src, 1, 0.0f, px);
                  if ((count + 1) % kSumChunk == 0) {  // float partial sums into double (above)
                    for (int64_t j = 0; j < g.c; ++j) total[size_t(j)] += double(px[j]);
                    std::fill(px, px + g.c, 0.0f);
                  }
                }
              }
            }
          }
          if (p.mode == PoolMode::avg && count >= kSumChunk) {
            for (int64_t j = 0; j < g.c; ++j) px[j] = float(total[size_t(j)] + double(px[j]));
            std::fill(total.begin(), total.end(), 0.0);
          }
          finish(px, g.c, float(count), p);
        }
      });
}

// Adaptive windows without indices whose bins hold at most kSumChunk values (float sums stay
// exact enough), rows first as pool_rows_first: an output row's bin rows reduced into v, then
// each bin's w span of v. The per-bin loops above cost a call per bin row; a 256@13x13 -> 6x6
// average ran at 1 % of the copy bandwidth. Averages multiply by 1 / area in both layouts.
bool adaptive_rows_first(const Geometry& g, const PoolParams& p, const int64_t* indices) {
  int64_t area = 1;
  for (const Axis& a : g.ax) area *= (a.in + a.out - 1) / a.out + 1;  // a bin's size at most
  // Channels-first global averages keep their one run per channel (summed in double), and
  // global maxima over planes of at most kSumChunk values take it too (16 planes at a time).
  const bool global_first = g.out_volume() == 1 && !p.channels_last &&
                            (p.mode == PoolMode::avg || g.in_volume() <= kSumChunk);
  return !indices && p.mode != PoolMode::lp && area <= kSumChunk && !global_first &&
         g.ax[2].in * (p.channels_last ? g.c : 1) <= kMaxRowFloats;
}

void adaptive_rows_first_pool(const float* x, const Geometry& g, const PoolParams& p, float* y) {
  const auto& kern = kernels::pool_kernel_for(active_isa());
  const Bins bd(g.ax[0]), bh(g.ax[1]), bw(g.ax[2]);
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  const bool last = p.channels_last, is_max = p.mode == PoolMode::max;
  const int64_t e = last ? g.c : 1, row_len = aw.in * e;
  // A bin spans at most ceil(in / out) + 1 positions of its axis.
  auto max_bin = [](const Axis& a) { return (a.in + a.out - 1) / a.out + 1; };
  const size_t max_taps = size_t(std::max(max_bin(ad) * max_bin(ah), max_bin(aw)));
  const auto widest = [](const Bins& b) {
    int64_t w = 0;
    for (size_t o = 0; o < b.begin.size(); ++o) w = std::max(w, b.end[o] - b.begin[o]);
    return w;
  };
  const bool direct =
      last && kern.row_last && widest(bd) * widest(bh) * widest(bw) <= kDirectMaxTaps;
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume();
  // Channels-first: a task per (n, c) plane; channels-last: a task per output row.
  const int64_t tasks = last ? g.n * ad.out * ah.out : g.n * g.c;
  parallel_for_elements(tasks, g.n * g.c * (in_vol + out_vol), [&](int64_t task, int) {
    float* v = static_cast<float*>(thread_workspace(kRowSlot, sizeof(float) * size_t(row_len)));
    const float** taps = static_cast<const float**>(
        thread_workspace(kRowPointersSlot, sizeof(const float*) * max_taps));
    const int64_t od0 = last ? task / ah.out % ad.out : 0, od1 = last ? od0 + 1 : ad.out;
    const int64_t oh0 = last ? task % ah.out : 0, oh1 = last ? oh0 + 1 : ah.out;
    const float* xt = x + (last ? task / (ad.out * ah.out) * in_vol * g.c : task * in_vol);
    for (int64_t od = od0; od < od1; ++od) {
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        int nrows = 0;
        for (int64_t id = bd.begin[size_t(od)]; id < bd.end[size_t(od)]; ++id) {
          for (int64_t ih = bh.begin[size_t(oh)]; ih < bh.end[size_t(oh)]; ++ih) {
            taps[nrows++] = xt + (id * ah.in + ih) * row_len;
          }
        }
        if (direct) {  // every bin straight from the input (see rows_first_channels_last)
          float* scales =
              static_cast<float*>(thread_workspace(kScalesSlot, sizeof(float) * size_t(aw.out)));
          for (int64_t ow = 0; !is_max && ow < aw.out; ++ow) {
            scales[ow] = 1.0f / float(nrows * (bw.end[size_t(ow)] - bw.begin[size_t(ow)]));
          }
          kern.row_last(g.c, taps, nrows, aw.out, bw.begin.data(), bw.end.data(), is_max, scales,
                        y + task * aw.out * e);
          continue;
        }
        const float* row = nrows == 1 ? taps[0] : v;  // a single row is read in place
        if (nrows > 1 && is_max) {
          kern.taps_max(row_len, taps, nullptr, nrows, v, nullptr, 0);
        } else if (nrows > 1) {
          kern.taps_sum(row_len, taps, nrows, 0.0f, 1.0f, v);
        }
        float* out = y + (last ? task * aw.out * e : task * out_vol + (od * ah.out + oh) * aw.out);
        for (int64_t ow = 0; ow < aw.out; ++ow, out += e) {
          const int64_t w0 = bw.begin[size_t(ow)], w1 = bw.end[size_t(ow)];
          const float scale = is_max ? 1.0f : 1.0f / float(nrows * (w1 - w0));
          if (last) {
            for (int64_t iw = w0; iw < w1; ++iw) taps[iw - w0] = row + iw * e;
            if (is_max) {
              kern.taps_max(e, taps, nullptr, int(w1 - w0), out, nullptr, 0);
            } else {
              kern.taps_sum(e, taps, int(w1 - w0), 0.0f, scale, out);
            }
            continue;
          }
          float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
          for (int64_t iw = w0; iw < w1; ++iw) {
            const float value = row[iw];
            acc = !is_max ? acc + value : (value > acc || value != value) ? value : acc;
          }
          *out = is_max ? acc : acc * scale;
        }
      }
    }
  });
}

}  // namespace

std::vector<int64_t> pool_output_shape(const TensorView& x, const PoolParams& p) {
  const std::string op = p.op + ": ";
  if (x.ndim != p.dims + 2) {
    static const char* kForms[2][3] = {{"(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)"},
                                       {"(N, L, C)", "(N, H, W, C)", "(N, D, H, W, C)"}};
    throw ValueError(op + "x must be " + std::to_string(p.dims + 2) + "-D " +
                     kForms[p.channels_last][p.dims - 1] + ", got shape " + x.shape_str());
  }
  if (!p.adaptive) {
    for (int i = 3 - p.dims; i < 3; ++i) {
      if (p.kernel[i] < 1) {
        throw ValueError(op + "kernel_size must be >= 1, got " + tuple_of(p.kernel, p.dims));
      }
      if (p.stride[i] < 1) {
        throw ValueError(op + "stride must be >= 1, got " + tuple_of(p.stride, p.dims));
      }
      if (p.dilation[i] < 1) {
        throw ValueError(op + "dilation must be >= 1, got " + tuple_of(p.dilation, p.dims));
      }
      if (p.pad_begin[i] < 0 || p.pad_end[i] < 0) {
        throw ValueError(op + "padding must be >= 0");
      }
    }
    if (p.divisor_override < 0) {
      throw ValueError(op + "divisor_override must be > 0, got " +
                       std::to_string(p.divisor_override));
    }
  } else {
    for (int i = 3 - p.dims; i < 3; ++i) {
      if (p.output[i] < 1) {
        throw ValueError(op + "output_size must be >= 1, got " + tuple_of(p.output, p.dims));
      }
    }
  }
  const Geometry g = geometry(x, p);
  if (!p.adaptive && x.numel() > 0) {
    for (int i = 3 - p.dims; i < 3; ++i) {
      if (g.ax[i].out < 1) {
        int64_t span[3], padded[3];
        for (int j = 0; j < 3; ++j) {
          span[j] = p.dilation[j] * (p.kernel[j] - 1) + 1;
          padded[j] = g.ax[j].in + p.pad_begin[j] + p.pad_end[j];
        }
        throw ValueError(op + "kernel_size " + tuple_of(p.kernel, p.dims) + " with dilation " +
                         tuple_of(p.dilation, p.dims) + " spans " + tuple_of(span, p.dims) +
                         ", larger than the padded input " + tuple_of(padded, p.dims) + " of x " +
                         x.shape_str());
      }
    }
  }
  if (p.adaptive && x.numel() > 0) {
    for (int i = 3 - p.dims; i < 3; ++i) {
      if (g.ax[i].in < 1) throw ValueError(op + "x " + x.shape_str() + " has an empty axis");
    }
  }
  const std::vector<int64_t> shape = shape_with(g, p);
  int64_t total = 1;
  for (int64_t v : shape) total = checked_mul(total, v, "pool output");
  checked_mul(total, 8, "pool output bytes");
  return shape;
}

void check_pool_out(const TensorView& out, const TensorView& x, const PoolParams& p,
                    const char* what) {
  const std::vector<int64_t> want = pool_output_shape(x, p);
  bool same = out.ndim == int(want.size());
  for (int d = 0; same && d < out.ndim; ++d) same = out.shape[d] == want[size_t(d)];
  if (!same) {
    TensorView expected = out;
    expected.ndim = int(want.size());
    for (int d = 0; d < expected.ndim; ++d) expected.shape[d] = want[size_t(d)];
    throw ValueError(p.op + ": " + what + " has shape " + out.shape_str() +
                     " but the result has shape " + expected.shape_str());
  }
  if (out.numel() > 0 && !out.is_contiguous()) {
    throw ValueError(p.op + ": " + what + " of shape " + out.shape_str() + " must be C-contiguous");
  }
  if (out.may_overlap(x)) {
    throw ValueError(p.op + ": " + what + " overlaps x; pass a separate array");
  }
}

namespace {

// Channels-first 2-D (or 1-D) adaptive pooling of rows of at most 16 values into at most 16
// bins, two planes at a time in registers (PoolAdaptiveRowsFn): the transposed route below moves
// the image twice more than the pooling does. 256@13x13 -> 6x6 average (batch 1, 1 thread,
// AVX-512, alternating processes): 12.7 -> 10.8 us, batch 8 92 -> 73 us; max -> 4x4 11.2 -> 9.3
// us, batch 8 81 -> 61 us.
constexpr int64_t kAdaptiveRowsMaxWidth = 16;

bool adaptive_rows_serves(const Geometry& g, const PoolParams& p) {
  return kernels::pool_kernel_for(active_isa()).adaptive_rows && p.adaptive && !p.channels_last &&
         g.ax[0].in == 1 && g.ax[0].out == 1 && g.ax[2].in <= kAdaptiveRowsMaxWidth &&
         g.ax[2].out <= kAdaptiveRowsMaxWidth;
}

void adaptive_rows_channels_first(const float* x, const Geometry& g, const PoolParams& p,
                                  float* y) {
  const auto& kern = kernels::pool_kernel_for(active_isa());
  const Bins bh(g.ax[1]), bw(g.ax[2]);
  const int64_t out_h = g.ax[1].out, out_w = g.ax[2].out;
  int taps = 1;
  for (int64_t ow = 0; ow < out_w; ++ow)
    taps = std::max(taps, int(bw.end[size_t(ow)] - bw.begin[size_t(ow)]));
  std::vector<int32_t> index(size_t(taps) * 16, 0);
  std::vector<uint16_t> tap_masks(size_t(taps), 0);
  for (int t = 0; t < taps; ++t) {
    for (int64_t ow = 0; ow < out_w; ++ow) {
      const int64_t pos = bw.begin[size_t(ow)] + t;
      if (pos >= bw.end[size_t(ow)]) continue;
      index[size_t(t) * 16 + size_t(ow)] = int32_t(pos);
      tap_masks[size_t(t)] = uint16_t(tap_masks[size_t(t)] | (1u << ow));
    }
  }
  const bool is_max = p.mode == PoolMode::max;
  std::vector<float> scales(is_max ? 0 : size_t(out_h * out_w));
  for (int64_t oh = 0; !is_max && oh < out_h; ++oh) {
    for (int64_t ow = 0; ow < out_w; ++ow) {
      scales[size_t(oh * out_w + ow)] = 1.0f / float((bh.end[size_t(oh)] - bh.begin[size_t(oh)]) *
                                                     (bw.end[size_t(ow)] - bw.begin[size_t(ow)]));
    }
  }
  const kernels::PoolAdaptiveRows rows{
      g.ax[1].in,   g.ax[2].in,      out_h,         out_w,        is_max,
      taps,         bh.begin.data(), bh.end.data(), index.data(), tap_masks.data(),
      scales.data()};
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume(), planes = g.n * g.c;
  constexpr int64_t kPlanesPerTask = 16;
  parallel_for_elements((planes + kPlanesPerTask - 1) / kPlanesPerTask, planes * (in_vol + out_vol),
                        [&](int64_t task, int) {
                          const int64_t first = task * kPlanesPerTask;
                          kern.adaptive_rows(rows, std::min(kPlanesPerTask, planes - first),
                                             x + first * in_vol, y + first * out_vol);
                        });
}

// Rows first, in the given layout.
void rows_first_any(const float* x, const Geometry& g, const PoolParams& p, float* y) {
  (p.adaptive ? adaptive_rows_first_pool : pool_rows_first)(x, g, p, y);
}

// Channels-first rows at most this long run through the channels-last code (each image
// transposed in, pooled, transposed back): a 13-wide row is one masked vector per window row
// and a scalar loop per bin, while channels-last runs whole vectors of channels. Measured, 1
// thread, AVX-512, per call: adaptive max 256@13x13 -> 4x4 from 117 to 15 us, -> 2x2 from 56
// to 14 us, adaptive average -> 6x6 from 57 to 17 us, SPP (1, 2, 4) from 277 to 48 us. Images
// above kViaChannelsLastMaxFloats stay channels-first (the transposed copy is per-thread
// workspace that outlives the call).
constexpr int64_t kViaChannelsLastMaxWidth = 16;
constexpr int64_t kViaChannelsLastMaxFloats = int64_t(1) << 22;
constexpr int kTransposedSlot = 2;

void rows_first_via_channels_last(const float* x, const Geometry& g, const PoolParams& p,
                                  float* y) {
  Geometry image = g;
  image.n = 1;
  PoolParams last = p;
  last.channels_last = true;
  // (C, DHW) -> (DHW, C), and back.
  const int64_t in = g.c * g.in_volume(), out = g.c * g.out_volume();
  float* buffer =
      static_cast<float*>(thread_workspace(kTransposedSlot, sizeof(float) * size_t(in + out)));
  through_transposed(x, g.n, g.c, g.in_volume(), y, g.out_volume(), g.c, buffer,
                     [&](const float* x_t, float* y_t) { rows_first_any(x_t, image, last, y_t); });
}

}  // namespace

void pool(const TensorView& x, const PoolParams& p, float* y, int64_t* indices) {
  const Geometry g = geometry(x, p);
  if (x.numel() == 0 || g.out_volume() == 0) return;
  const bool fast = p.adaptive ? adaptive_rows_first(g, p, indices) : rows_first(g, p, indices);
  const int64_t image = g.c * std::max(g.in_volume(), g.out_volume());
  if (fast && adaptive_rows_serves(g, p)) {
    adaptive_rows_channels_first(x.data, g, p, y);
  } else if (fast && !p.channels_last && g.ax[2].in <= kViaChannelsLastMaxWidth && g.c > 1 &&
             image <= kViaChannelsLastMaxFloats) {
    rows_first_via_channels_last(x.data, g, p, y);
  } else if (fast) {
    rows_first_any(x.data, g, p, y);
  } else if (p.adaptive) {
    (p.channels_last ? adaptive_channels_last : adaptive_channels_first)(x.data, g, p, y, indices);
  } else {
    (p.channels_last ? pool_channels_last : pool_channels_first)(x.data, g, p, y, indices);
  }
}

// Every level from one channels-last image: channels-first images are transposed once for all
// levels (one adaptive pooling per level transposed its own copy, and a (256, 13, 13) image's
// pyramid (1, 2, 4) took 3 such calls), then each level's (l*l, C) result is transposed into
// its (C, l, l) place. Images above kViaChannelsLastMaxFloats pool channels-first, level by
// level.
void spatial_pyramid_pool(const TensorView& x, const std::vector<int64_t>& levels, bool is_max,
                          bool channels_last, float* y) {
  const int64_t n = x.shape[0], c = x.shape[channels_last ? 3 : 1];
  const int64_t h = x.shape[channels_last ? 1 : 2], w = x.shape[channels_last ? 2 : 3];
  const int64_t image = c * h * w;
  int64_t cells = 0, max_cells = 0;
  for (const int64_t l : levels) {
    cells += l * l;
    max_cells = std::max(max_cells, l * l);
  }
  PoolParams p;
  p.op = "spatial_pyramid_pool2d";
  p.dims = 2;
  p.mode = is_max ? PoolMode::max : PoolMode::avg;
  p.adaptive = true;
  if (!channels_last && image > kViaChannelsLastMaxFloats) {
    std::vector<float> level_out;
    int64_t offset = 0;  // of the level within an image's output row
    for (const int64_t size : levels) {
      p.output[1] = p.output[2] = size;
      level_out.resize(size_t(n * c * size * size));
      pool(x, p, level_out.data(), nullptr);
      for (int64_t i = 0; i < n; ++i) {
        std::copy_n(level_out.data() + i * c * size * size, c * size * size,
                    y + i * c * cells + offset);
      }
      offset += c * size * size;
    }
    return;
  }
  p.channels_last = true;
  Geometry g;
  g.n = 1;
  g.c = c;
  g.ax[1].in = h;
  g.ax[2].in = w;
  const int64_t staged = channels_last ? 0 : image;
  float* buffer = static_cast<float*>(
      thread_workspace(kTransposedSlot, sizeof(float) * size_t(staged + max_cells * c)));
  float* level_out = buffer + staged;
  for (int64_t i = 0; i < n; ++i) {
    const float* xt = x.data + i * image;
    if (!channels_last) {
      transpose_matrix(xt, c, h * w, buffer);
      xt = buffer;
    }
    float* out = y + i * c * cells;
    for (const int64_t size : levels) {
      g.ax[1].out = g.ax[2].out = p.output[1] = p.output[2] = size;
      if (adaptive_rows_first(g, p, nullptr)) {
        adaptive_rows_first_pool(xt, g, p, level_out);
      } else {
        adaptive_channels_last(xt, g, p, level_out, nullptr);
      }
      transpose_matrix(level_out, size * size, c, out);
      out += c * size * size;
    }
  }
}

namespace {

// The first negative or NaN element of x, as a ValueError (the rule of every path; -0.0 passes).
void check_non_negative(const TensorView& x, const PoolParams& p) {
  const int64_t total = x.numel();
  for (int64_t i = 0; i < total; ++i) {  // x is contiguous (the binding's view)
    if (!(x.data[i] >= 0.0f)) {
      throw ValueError(p.op + ": x must be non-negative (e.g. after a ReLU), got " +
                       std::to_string(x.data[i]) + " at flat position " + std::to_string(i));
    }
  }
}

// Whether the windows along an axis read every input index (no gap between windows, none after
// the last): then the kernels' pass sees every element and the input check needs no pass of
// its own.
bool windows_cover(const Axis& a) { return a.s <= a.k && (a.out - 1) * a.s - a.pb + a.k >= a.in; }

}  // namespace

// The kernels (kernels/stoch) compute in float32 and report whether an input they read had a
// bit pattern above +inf's (a sign bit or a NaN); then check_non_negative throws at the first
// offender as the rule says (or finds only -0.0 and lets the result stand). Tasks: one per
// (n, c) plane (NCHW) or per (n, output row) (NHWC).
void stochastic_pool(const TensorView& x, const PoolParams& p, bool training, uint64_t seed,
                     float* y, int64_t* indices) {
  const int64_t total = x.numel();
  const Geometry g = geometry(x, p);
  const Axis &ad = g.ax[0], &ah = g.ax[1], &aw = g.ax[2];
  // Each factor first: the product of three unchecked kernel sizes could overflow.
  static_assert(kMaxStochasticTaps <= kernels::kStochMaxTaps, "the kernels' tap arrays");
  if (ad.k > kMaxStochasticTaps || ah.k > kMaxStochasticTaps || aw.k > kMaxStochasticTaps ||
      ad.k * ah.k * aw.k > kMaxStochasticTaps) {
    check_non_negative(x, p);  // that error first, as ever
    throw ValueError(p.op + ": kernel_size " + tuple_of(p.kernel, p.dims) + " has more than " +
                     std::to_string(kMaxStochasticTaps) + " taps");
  }
  if (total == 0 || g.out_volume() == 0) return check_non_negative(x, p);
  kernels::StochGeometry sg;
  sg.c = g.c;
  sg.in_h = ah.in, sg.in_w = aw.in, sg.out_h = ah.out, sg.out_w = aw.out;
  sg.kh = ah.k, sg.kw = aw.k, sg.sh = ah.s, sg.sw = aw.s, sg.pt = ah.pb, sg.pl = aw.pb;
  sg.training = training;
  sg.key = kernels::stoch_key(seed);
  const auto& kern = kernels::stoch_kernel_for(active_isa());
  const int64_t in_vol = g.in_volume(), out_vol = g.out_volume();
  const int64_t tasks = p.channels_last ? g.n * ah.out : g.n * g.c;
  std::atomic<uint32_t> seen{0};
  auto note = [&seen](uint32_t bits) {  // seen = max(seen, bits)
    uint32_t prev = seen.load(std::memory_order_relaxed);
    while (prev < bits && !seen.compare_exchange_weak(prev, bits, std::memory_order_relaxed)) {
    }
  };
  parallel_for_elements(tasks, total + g.n * g.c * out_vol, [&](int64_t task, int) {
    uint32_t bits;
    if (p.channels_last) {
      const int64_t n = task / ah.out, oh = task % ah.out, row = aw.out * g.c;
      bits = kern.row(sg, n, oh, x.data + n * in_vol * g.c, y + task * row,
                      indices ? indices + task * row : nullptr);
    } else {
      bits = kern.plane(sg, task, x.data + task * in_vol, y + task * out_vol,
                        indices ? indices + task * out_vol : nullptr);
    }
    note(bits);
  });
  if (!windows_cover(ah) || !windows_cover(aw)) {  // inputs no window read: a pass of their own
    const int64_t chunk = int64_t(1) << 16, chunks = (total + chunk - 1) / chunk;
    parallel_for_elements(chunks, total, [&](int64_t t, int) {
      note(kern.max_bits(std::min(chunk, total - t * chunk), x.data + t * chunk));
    });
  }
  if (seen.load() > 0x7f800000u) check_non_negative(x, p);
}

void max_unpool(const TensorView& x, const int64_t* indices, bool channels_last, int dims,
                const std::vector<int64_t>& out_spatial, float* y, const std::string& op) {
  const int64_t n = x.shape[0], c = channels_last ? x.shape[x.ndim - 1] : x.shape[1];
  int64_t in_vol = 1, out_vol = 1;
  for (int i = 0; i < dims; ++i) {
    in_vol *= x.shape[(channels_last ? 1 : 2) + i];
    out_vol *= out_spatial[size_t(i)];
  }
  const int64_t total = n * c * in_vol;
  for (int64_t i = 0; i < total; ++i) {  // checked before anything is written
    if (indices[i] < 0 || indices[i] >= out_vol) {
      throw ValueError(op + ": index " + std::to_string(indices[i]) + " at flat position " +
                       std::to_string(i) + " of indices is outside the output's " +
                       std::to_string(out_vol) + " positions per channel");
    }
  }
  std::fill(y, y + n * c * out_vol, 0.0f);
  parallel_for_elements(n * (channels_last ? 1 : c), n * c * out_vol, [&](int64_t task, int) {
    if (channels_last) {  // task = image: x[n][q][ch] -> y[n][indices][ch]
      for (int64_t q = 0; q < in_vol; ++q) {
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t i = (task * in_vol + q) * c + ch;
          y[(task * out_vol + indices[i]) * c + ch] = x.data[i];
        }
      }
    } else {  // task = (n, c) volume
      for (int64_t q = 0; q < in_vol; ++q) {
        const int64_t i = task * in_vol + q;
        y[task * out_vol + indices[i]] = x.data[i];
      }
    }
  });
}

}  // namespace cnnfast::ops
