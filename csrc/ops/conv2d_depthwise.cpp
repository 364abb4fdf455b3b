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
#include "ops/conv2d.h"

namespace cnnfast::ops {
namespace {

// The window geometry of one NCHW plane for the plane kernels.
kernels::DwPlaneShape plane_shape(const Conv2dGeometry& g, const Conv2dParams& p) {
  return {g.h,        g.w,        g.oh,         g.ow,         g.kh,      g.kw,
          p.stride_h, p.stride_w, p.dilation_h, p.dilation_w, p.pad_top, p.pad_left};
}

// NCHW outputs narrower than this run through NHWC (the input transposed per image, the output
// transposed back): a 16-lane row chunk of the plane kernel is more than a quarter empty below
// 12 columns. Measured since the plane kernel reuses rows at the borders too (1 thread,
// AVX-512, alternating processes, direct / through NHWC): 576@14x14 b1 70.6 / 70.9 us, b8 533 /
// 547 us; 192@28x28 stride 2 (14 columns) b8 279 / 321 us; 960@7x7 67 / 41 us.
constexpr int64_t kNchwDirectMinWidth = 12;

// ... except the small "same"-padded stride-1 planes the AVX-512 plane kernel computes as flat
// vectors, which keep the lanes busy whatever the row width (direct / through NHWC, same
// measurement: 960@7x7 b1 42 / 47 us, b8 298 / 338 us; 576@14x14 as with row chunks).
bool runs_flat(const Conv2dGeometry& g, const Conv2dParams& p) {
  return active_isa() == Isa::avx512 && kernels::dw_flat_fits(plane_shape(g, p));
}

// NCHW: one task per run of kPlanesPerTask output channels of one image (the kernel works out
// the border masks once per run). The kernel applies the scale, bias and activation in its
// stores where it can; otherwise they follow as a pass per plane while it is still in L1.
constexpr int64_t kPlanesPerTask = 32;

void depthwise_nchw(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                    const Conv2dParams& p, float* y) {
  const auto& kern = kernels::depthwise_kernel_for(active_isa());
  const auto& epilogue = kernels::elementwise_kernel_for(active_isa());
  const int64_t mult = g.c_out / g.c_in, taps = g.kh * g.kw;
  const kernels::DwPlaneShape shape = plane_shape(g, p);
  // Fewer planes per task where runs of kPlanesPerTask would leave fewer than 4 tasks per thread.
  const int64_t per_task =
      std::clamp<int64_t>(g.n * g.c_out / (4 * get_num_threads()), 1, kPlanesPerTask);
  const int64_t runs = (g.c_out + per_task - 1) / per_task;
  parallel_for(g.n * runs, [&](int64_t task, int) {
    const int64_t n = task / runs, oc0 = task % runs * per_task;
    const int64_t count = std::min(per_task, g.c_out - oc0);
    float* out = y + (n * g.c_out + oc0) * g.pixels();
    // The per-channel epilogue x * scale + bias, then the activation (the kernel may fuse it).
    const kernels::DwEpilogue ep{p.scale ? p.scale + oc0 : nullptr, bias ? bias + oc0 : nullptr,
                                 p.activation, p.negative_slope};
    const bool affine = p.scale || bias || p.activation != kernels::Activation::none;
    const bool applied = kern.plane(x + n * g.c_in * g.h * g.w, w + oc0 * taps, shape, oc0, count,
                                    mult, affine ? &ep : nullptr, out);
    if (applied) return;
    for (int64_t oc = oc0; oc < oc0 + count; ++oc, out += g.pixels()) {
      // Scale, bias and activation over the whole plane in one pass: x * scale + bias, as the
      // NHWC path computes it (x - 0 - 0 is x exactly).
      const kernels::ChannelAffine affine_map{0.0f, 0.0f, p.scale ? p.scale[oc] : 1.0f,
                                              bias ? bias[oc] : 0.0f};
      epilogue.scale_shift(g.pixels(), out, affine_map, p.activation, p.negative_slope, out);
    }
  });
}

// NHWC: one task per (image, output row); the channels of a pixel run along the vector lanes,
// and each pixel's taps are summed in registers by one kernel call. With a channel multiplier,
// each tap's pixel is first widened to C_out lanes (input channel oc / m for lane oc).
void depthwise_nhwc(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                    const Conv2dParams& p, float* y) {
  const auto& kern = kernels::depthwise_kernel_for(active_isa());
  const auto& epilogue = kernels::elementwise_kernel_for(active_isa());
  const int64_t mult = g.c_out / g.c_in, taps = g.kh * g.kw;
  std::vector<float> wt(size_t(taps * g.c_out));  // wt[t][oc]: tap-major, channels contiguous
  for (int64_t oc = 0; oc < g.c_out; ++oc) {
    for (int64_t t = 0; t < taps; ++t) wt[size_t(t * g.c_out + oc)] = w[oc * taps + t];
  }
  // The per-channel epilogue x * scale + bias, then the activation, as the NCHW path's
  // scale_shift computes it; applied to a whole output row at once (per pixel, the calls and
  // scalar loops took a third as long as the taps themselves on MobileNetV2, perf).
  const std::vector<float> zeros(size_t(g.c_out), 0.0f), ones(size_t(g.c_out), 1.0f);
  const float* scale = p.scale ? p.scale : ones.data();
  const float* shift = bias ? bias : zeros.data();
  const bool affine = p.scale || bias || p.activation != kernels::Activation::none;
  // [ow_lo, ow_hi): the output columns whose every horizontal tap lies inside the image. With
  // no channel multiplier they run as one kernel call per row (the same taps, step apart).
  const int64_t reach = g.w - 1 + p.pad_left - (g.kw - 1) * p.dilation_w;
  const int64_t ow_lo =
      std::min(g.ow, p.pad_left > 0 ? (p.pad_left + p.stride_w - 1) / p.stride_w : int64_t(0));
  const int64_t ow_hi = mult == 1 && reach >= 0 ? std::min(g.ow, reach / p.stride_w + 1) : 0;
  const int64_t step = p.stride_w * g.c_in;
  parallel_for(g.n * g.oh, [&](int64_t task, int) {
    const int64_t n = task / g.oh, oh = task % g.oh;
    std::vector<const float*> tap_ptrs(static_cast<size_t>(taps)),
        weight_ptrs(static_cast<size_t>(taps));
    std::vector<float> widened(mult > 1 ? size_t(taps * g.c_out) : 0);
    for (int64_t ow = 0; ow < g.ow;) {
      float* acc = y + ((n * g.oh + oh) * g.ow + ow) * g.c_out;
      const int64_t npix = ow >= ow_lo && ow < ow_hi ? ow_hi - ow : 1;
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
      // An interior run has every column of each kernel row it reads: a grid (DwPixelFn).
      const bool grid = npix > 1;
      kern.pixel(g.c_out, tap_ptrs.data(), weight_ptrs.data(), ntaps, npix, step,
                 grid ? int(g.kw) : 0, grid ? p.dilation_w * g.c_in : 0, acc);
      ow += npix;
    }
    if (affine) {
      float* row = y + (n * g.oh + oh) * g.ow * g.c_out;
      epilogue.scale_shift_rows(g.ow, g.c_out, row, zeros.data(), zeros.data(), scale, shift,
                                p.activation, p.negative_slope, row);
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
  if (g.ow >= kNchwDirectMinWidth || runs_flat(g, p)) {
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
  AlignedBuffer buffer(sizeof(float) * size_t(g.c_in * g.h * g.w + g.c_out * g.pixels()));
  through_transposed(
      x, g.n, g.c_in, g.h * g.w, y, g.pixels(), g.c_out, static_cast<float*>(buffer.data()),
      [&](const float* x_t, float* y_t) { depthwise_nhwc(x_t, w, bias, one, nhwc, y_t); });
}

}  // namespace cnnfast::ops
