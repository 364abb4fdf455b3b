// conv2d's "depthwise" algorithm: one input channel per group (channel multiplier m = C_out /
// C_in), computed as a direct sliding window instead of one tiny GEMM per channel. Every output
// sums its in-image taps in (i, j) order from zero (the tier's depthwise kernels, one
// arithmetic for both layouts), then takes the scale, the bias and the activation, so NCHW and
// NHWC agree bitwise. Called by ops/conv2d.cpp.
#include <algorithm>
#include <utility>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/registry.h"
#include "ops/activation.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {
namespace {

// NCHW: one task per (image, output channel), one output row at a time in cache; the taps run
// along the row (unit stride when stride_w is 1, which the compiler vectorises).
void depthwise_nchw(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                    const Conv2dParams& p, float* y) {
  const auto& kern = kernels::depthwise_kernel_for(active_isa());
  const int64_t mult = g.c_out / g.c_in, taps = g.kh * g.kw;
  parallel_for(g.n * g.c_out, [&](int64_t task, int) {
    const int64_t n = task / g.c_out, oc = task % g.c_out;
    // Where each kernel column reads inside the image: the same for every output row.
    std::vector<std::pair<int64_t, int64_t>> inside(size_t(g.kw));
    for (int64_t j = 0; j < g.kw; ++j) {
      inside[j] = inside_range(j * p.dilation_w - p.pad_left, p.stride_w, g.w, g.ow);
    }
    const float* plane = x + (n * g.c_in + oc / mult) * g.h * g.w;
    const float* wk = w + oc * taps;
    float* out = y + (n * g.c_out + oc) * g.pixels();
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      float* row = out + oh * g.ow;
      std::fill(row, row + g.ow, 0.0f);
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * p.stride_h - p.pad_top + i * p.dilation_h;
        if (ih < 0 || ih >= g.h) continue;
        const float* in_row = plane + ih * g.w;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t offset = j * p.dilation_w - p.pad_left;
          const auto [lo, hi] = inside[size_t(j)];
          if (lo < hi) {
            kern.row(hi - lo, in_row + lo * p.stride_w + offset, p.stride_w, wk[i * g.kw + j],
                     row + lo);
          }
        }
      }
      if (p.scale) {
        for (int64_t ow = 0; ow < g.ow; ++ow) row[ow] *= p.scale[oc];
      }
      if (bias) {
        for (int64_t ow = 0; ow < g.ow; ++ow) row[ow] += bias[oc];
      }
      activate(row, g.ow, p.activation, p.negative_slope);
    }
  });
}

// NHWC: one task per (image, output row); the channels of a pixel run along the vector lanes,
// and each pixel's taps are summed in registers by one kernel call. With a channel multiplier,
// each tap's pixel is first widened to C_out lanes (input channel oc / m for lane oc).
void depthwise_nhwc(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                    const Conv2dParams& p, float* y) {
  const auto& kern = kernels::depthwise_kernel_for(active_isa());
  const int64_t mult = g.c_out / g.c_in, taps = g.kh * g.kw;
  std::vector<float> wt(size_t(taps * g.c_out));  // wt[t][oc]: tap-major, channels contiguous
  for (int64_t oc = 0; oc < g.c_out; ++oc) {
    for (int64_t t = 0; t < taps; ++t) wt[size_t(t * g.c_out + oc)] = w[oc * taps + t];
  }
  parallel_for(g.n * g.oh, [&](int64_t task, int) {
    const int64_t n = task / g.oh, oh = task % g.oh;
    std::vector<const float*> tap_ptrs(static_cast<size_t>(taps)),
        weight_ptrs(static_cast<size_t>(taps));
    std::vector<float> widened(mult > 1 ? size_t(taps * g.c_out) : 0);
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      float* acc = y + ((n * g.oh + oh) * g.ow + ow) * g.c_out;
      int ntaps = 0;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * p.stride_h - p.pad_top + i * p.dilation_h;
        if (ih < 0 || ih >= g.h) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t iw = ow * p.stride_w - p.pad_left + j * p.dilation_w;
          if (iw < 0 || iw >= g.w) continue;
          const float* px = x + ((n * g.h + ih) * g.w + iw) * g.c_in;
          if (mult > 1) {
            float* wide = widened.data() + ntaps * g.c_out;
            for (int64_t oc = 0; oc < g.c_out; ++oc) wide[oc] = px[oc / mult];
            px = wide;
          }
          tap_ptrs[size_t(ntaps)] = px;
          weight_ptrs[size_t(ntaps++)] = wt.data() + (i * g.kw + j) * g.c_out;
        }
      }
      kern.pixel(g.c_out, tap_ptrs.data(), weight_ptrs.data(), ntaps, acc);
      if (p.scale) {
        for (int64_t oc = 0; oc < g.c_out; ++oc) acc[oc] *= p.scale[oc];
      }
      if (bias) {
        for (int64_t oc = 0; oc < g.c_out; ++oc) acc[oc] += bias[oc];
      }
      activate(acc, g.c_out, p.activation, p.negative_slope);
    }
  });
}

}  // namespace

void conv2d_depthwise(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                      const Conv2dParams& p, float* y) {
  if (p.nhwc) {
    depthwise_nhwc(x, w, bias, g, p, y);
  } else {
    depthwise_nchw(x, w, bias, g, p, y);
  }
}

}  // namespace cnnfast::ops
