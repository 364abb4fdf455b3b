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
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/activation.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {
namespace {

// NCHW outputs narrower than this run through NHWC (the input transposed per image, the output
// transposed back): the NCHW row kernel's calls over a few pixels cost more than the two
// transposes. Measured, 1 thread, AVX-512, MobileNetV2 depthwise layers: NHWC over NCHW
// direct 0.71x at 112x112 s1, 1.65x at 56x56 (s2 from 112), 2.4x at 56, 3.9x at 28, 8x at 14.
constexpr int64_t kNchwDirectMinWidth = 32;

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

// dst (rows x cols) = src (cols x rows) transposed, in 32 x 32 tiles (one task each).
void transpose(const float* src, int64_t cols, int64_t rows, float* dst) {
  constexpr int64_t kTile = 32;
  const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  parallel_for(tiles_r * tiles_c, [&](int64_t task, int) {
    const int64_t r0 = task / tiles_c * kTile, c0 = task % tiles_c * kTile;
    const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = c0; c < c1; ++c) dst[r * cols + c] = src[c * rows + r];
    }
  });
}

}  // namespace

void conv2d_depthwise(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                      const Conv2dParams& p, float* y) {
  if (p.nhwc) {
    depthwise_nhwc(x, w, bias, g, p, y);
    return;
  }
  if (g.ow >= kNchwDirectMinWidth) {
    depthwise_nchw(x, w, bias, g, p, y);
    return;
  }
  // Narrow NCHW outputs: each image through NHWC (transposed in, computed, transposed back).
  const Conv2dGeometry one = [&] {
    Conv2dGeometry image = g;
    image.n = 1;
    return image;
  }();
  Conv2dParams nhwc = p;
  nhwc.nhwc = true;
  const int64_t in = g.c_in * g.h * g.w, out = g.c_out * g.pixels();
  AlignedBuffer buffer(sizeof(float) * size_t(in + out));
  float* x_t = static_cast<float*>(buffer.data());
  float* y_t = x_t + in;
  for (int64_t n = 0; n < g.n; ++n) {
    transpose(x + n * in, g.c_in, g.h * g.w, x_t);
    depthwise_nhwc(x_t, w, bias, one, nhwc, y_t);
    transpose(y_t, g.pixels(), g.c_out, y + n * out);
  }
}

}  // namespace cnnfast::ops
