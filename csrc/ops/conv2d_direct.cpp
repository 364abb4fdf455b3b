// conv2d's "direct" algorithm: every output computed from its window by the tier's direct
// kernel, a block of up to kDirectMaxOutputs output channels of one group per call, summing over
// (c, i, j). NCHW natively; NHWC through NCHW per image (input transposed in, output back).
// Any stride, padding, dilation and groups; chosen by "auto" for grouped convolutions with few
// channels per group, where one small GEMM per group wastes most of each micro-tile.
#include <algorithm>

#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {
namespace {

void direct_nchw(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                 const Conv2dParams& p, float* y) {
  const auto& kern = kernels::direct_kernel_for(active_isa());
  const auto& epilogue = kernels::elementwise_kernel_for(active_isa());
  const int64_t groups = g.c_in / g.icg, taps = g.kh * g.kw;
  const int64_t blocks = (g.ocg + kernels::kDirectMaxOutputs - 1) / kernels::kDirectMaxOutputs;
  const kernels::DwPlaneShape shape{g.h,          g.w,          g.oh,       g.ow,
                                    g.kh,         g.kw,         p.stride_h, p.stride_w,
                                    p.dilation_h, p.dilation_w, p.pad_top,  p.pad_left};
  const int64_t in_plane = g.h * g.w, out_plane = g.pixels();
  parallel_for(g.n * groups * blocks, [&](int64_t task, int) {
    const int64_t n = task / (groups * blocks), grp = task / blocks % groups;
    const int64_t o0 = grp * g.ocg + task % blocks * kernels::kDirectMaxOutputs;
    const int count = int(std::min<int64_t>(kernels::kDirectMaxOutputs, (grp + 1) * g.ocg - o0));
    float* out = y + (n * g.c_out + o0) * out_plane;
    kern.planes(x + (n * g.c_in + grp * g.icg) * in_plane, g.icg, in_plane, w + o0 * g.icg * taps,
                count, shape, out, out_plane);
    for (int o = 0; o < count; ++o) {  // scale, bias and activation: one pass per plane
      const kernels::ChannelAffine affine{0.0f, 0.0f, p.scale ? p.scale[o0 + o] : 1.0f,
                                          bias ? bias[o0 + o] : 0.0f};
      epilogue.scale_shift(out_plane, out + o * out_plane, affine, p.activation, p.negative_slope,
                           out + o * out_plane);
    }
  });
}

}  // namespace

void transpose_matrix(const float* src, int64_t cols, int64_t rows, float* dst) {
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  constexpr int64_t kTile = 64;
  const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  parallel_for_elements(tiles_r * tiles_c, rows * cols, [&](int64_t task, int) {
    const int64_t r0 = task / tiles_c * kTile, c0 = task % tiles_c * kTile;
    kern.transpose(std::min(kTile, cols - c0), std::min(kTile, rows - r0), src + c0 * rows + r0,
                   rows, dst + r0 * cols + c0, cols);
  });
}

void conv2d_direct(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                   const Conv2dParams& p, float* y) {
  if (!p.nhwc) {
    direct_nchw(x, w, bias, g, p, y);
    return;
  }
  Conv2dGeometry one = g;
  one.n = 1;
  // (HW, C) -> (C, HW), and (C, OHW) -> (OHW, C) back.
  AlignedBuffer buffer(sizeof(float) * size_t(g.c_in * g.h * g.w + g.c_out * g.pixels()));
  through_transposed(x, g.n, g.h * g.w, g.c_in, y, g.c_out, g.pixels(),
                     static_cast<float*>(buffer.data()),
                     [&](const float* x_t, float* y_t) { direct_nchw(x_t, w, bias, one, p, y_t); });
}

}  // namespace cnnfast::ops
