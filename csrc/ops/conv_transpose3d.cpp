// conv_transpose3d by GEMM + col2vol: validate -> output shape -> per image, group and block of
// input depth slices, cols = Wᵀ x (one GEMM: ocg*kd*kh*kw x block pixels, NCDHW), then every
// output row (oc, od, oh) adds the columns of the taps that land on it (a gather, parallel over
// output rows: no races, no atomics), then bias and activation in one pass. NDHWC runs through
// NCDHW (each image transposed in and the result back: one documented copy).
// Output position of input (id, ih, iw) and tap (kd, i, j): od = id*stride_d - pad_front +
// kd*dilation_d (likewise h, w). The 3-D counterpart of ops/conv_transpose2d.cpp.
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/conv2d.h"
#include "ops/conv3d.h"
#include "ops/conv_transpose2d.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

// The columns of one block stay below this (L2-sized blocks of input depth slices).
constexpr int64_t kColumnBytes = int64_t(2) << 20;

using Geometry = Conv3dGeometry;

std::string triple(int64_t a, int64_t b, int64_t c) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

Geometry geometry(const TensorView& x, const TensorView& w, const ConvTranspose3dParams& p) {
  const Conv3dParams& c = p.conv;
  Geometry g;
  g.n = x.shape[0];
  g.c_in = c.ndhwc ? x.shape[4] : x.shape[1];
  g.d = c.ndhwc ? x.shape[1] : x.shape[2];
  g.h = c.ndhwc ? x.shape[2] : x.shape[3];
  g.w = c.ndhwc ? x.shape[3] : x.shape[4];
  g.icg = c.groups > 0 ? g.c_in / c.groups : 0;
  g.ocg = w.shape[1];
  g.c_out = g.ocg * c.groups;
  g.kd = w.shape[2];
  g.kh = w.shape[3];
  g.kw = w.shape[4];
  g.od = (g.d - 1) * c.stride_d - c.pad_front - c.pad_back + c.dilation_d * (g.kd - 1) +
         p.output_padding_d + 1;
  g.oh = (g.h - 1) * c.stride_h - c.pad_top - c.pad_bottom + c.dilation_h * (g.kh - 1) +
         p.output_padding_h + 1;
  g.ow = (g.w - 1) * c.stride_w - c.pad_left - c.pad_right + c.dilation_w * (g.kw - 1) +
         p.output_padding_w + 1;
  return g;
}

// cols[((oc*kd + a)*kh + i)*kw + j][((id - d0)*H + ih)*W + iw] for input slices [d0, d1) of one
// group, added into the group's output volumes y_g (ocg volumes of OD x OH x OW).
// With `assign`, every output element receives at most one tap (taps never overlap), so the first
// and only contribution is stored instead of added.
void gather(const float* cols, const Geometry& g, const Conv3dParams& c, int64_t d0, int64_t d1,
            bool assign, float* y_g) {
  const int64_t block = (d1 - d0) * g.h * g.w;
  // Output depth slices the block reaches.
  const int64_t first = std::max<int64_t>(0, d0 * c.stride_d - c.pad_front);
  const int64_t last =
      std::min<int64_t>(g.od, (d1 - 1) * c.stride_d - c.pad_front + c.dilation_d * (g.kd - 1) + 1);
  if (first >= last) return;
  const int64_t slices = last - first;
  // Per kernel column j: ow = iw*stride_w + offset for the iw in [lo, hi) whose ow lies in
  // [0, OW) (inside_range's question asked backwards), worked out once per block.
  std::vector<std::pair<int64_t, int64_t>> inside(size_t(g.kw));
  for (int64_t j = 0; j < g.kw; ++j) {
    inside[size_t(j)] = inside_range(j * c.dilation_w - c.pad_left, c.stride_w, g.ow, g.w);
  }
  parallel_for(g.ocg * slices * g.oh, [&](int64_t task, int) {
    const int64_t oh = task % g.oh, od = first + task / g.oh % slices, oc = task / g.oh / slices;
    float* row = y_g + ((oc * g.od + od) * g.oh + oh) * g.ow;
    for (int64_t a = 0; a < g.kd; ++a) {
      const int64_t id = transposed_source(od, c.pad_front, a, c.dilation_d, c.stride_d, d0, d1);
      if (id < 0) continue;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = transposed_source(oh, c.pad_top, i, c.dilation_h, c.stride_h, 0, g.h);
        if (ih < 0) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const float* src = cols + (((oc * g.kd + a) * g.kh + i) * g.kw + j) * block +
                             ((id - d0) * g.h + ih) * g.w;
          const int64_t offset = j * c.dilation_w - c.pad_left;
          const auto [lo, hi] = inside[size_t(j)];
          if (assign) {
            for (int64_t iw = lo; iw < hi; ++iw) row[iw * c.stride_w + offset] = src[iw];
          } else {
            for (int64_t iw = lo; iw < hi; ++iw) row[iw * c.stride_w + offset] += src[iw];
          }
        }
      }
    }
  });
}

// y (one or more NCDHW images) = the transposed convolution of x, then bias and activation.
void transpose_ncdhw(const float* x, const float* w, const float* bias, const Geometry& g,
                     const ConvTranspose3dParams& p, float* y) {
  const Conv3dParams& c = p.conv;
  const int64_t pixels = g.pixels(), out_total = g.n * g.c_out * pixels;
  // Kernel == stride with dilation 1 (the UNet 2x2x2/2 up-convolution): the taps tile the output
  // without overlap and, with no output_padding, cover all of it: no zero-fill, stores not adds.
  const bool tiles = g.kd == c.stride_d && g.kh == c.stride_h && g.kw == c.stride_w &&
                     c.dilation_d == 1 && c.dilation_h == 1 && c.dilation_w == 1;
  const bool covered = tiles && p.output_padding_d == 0 && p.output_padding_h == 0 &&
                       p.output_padding_w == 0 && g.icg > 0 && g.volume() > 0;
  if (!covered) std::memset(y, 0, sizeof(float) * size_t(out_total));
  const int64_t m = g.ocg * g.taps(), slice = g.h * g.w;  // columns per input pixel
  if (g.icg > 0 && g.d > 0 && slice > 0) {
    const int64_t slices_per_block = std::clamp<int64_t>(
        kColumnBytes / int64_t(sizeof(float)) / std::max<int64_t>(1, m * slice), 1, g.d);
    AlignedBuffer cols_buffer(sizeof(float) * size_t(m * slices_per_block * slice));
    float* cols = static_cast<float*>(cols_buffer.data());
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t grp = 0; grp < c.groups; ++grp) {
        for (int64_t d0 = 0; d0 < g.d; d0 += slices_per_block) {
          const int64_t d1 = std::min(g.d, d0 + slices_per_block), block = (d1 - d0) * slice;
          // A = W_gᵀ: element (r, k) = w[grp*icg + k][r] (weight rows are (C_in, ocg*taps)).
          const float* x_block = x + ((n * g.c_in + grp * g.icg) * g.d + d0) * slice;
          sgemm(m, block, g.icg, {w + grp * g.icg * m, 1, m}, {x_block, g.volume(), 1}, cols, block,
                kNoEpilogue);
          gather(cols, g, c, d0, d1, tiles, y + (n * g.c_out + grp * g.ocg) * pixels);
        }
      }
    }
  }
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  parallel_for(g.n * g.c_out, [&](int64_t volume, int) {
    float* out = y + volume * pixels;
    const kernels::ChannelAffine affine{0.0f, 0.0f, 1.0f, bias ? bias[volume % g.c_out] : 0.0f};
    kern.scale_shift(pixels, out, affine, c.activation, c.negative_slope, out);
  });
}

}  // namespace

std::vector<int64_t> conv_transpose3d_output_shape(const TensorView& x, const TensorView& w,
                                                   const TensorView* bias,
                                                   const ConvTranspose3dParams& p) {
  const Conv3dParams& c = p.conv;
  const std::string op = "conv_transpose3d: ";
  if (x.ndim != 5) {
    throw ValueError(op + "x must be " +
                     (c.ndhwc ? "5-D (N, D, H, W, C_in)" : "5-D (N, C_in, D, H, W)") +
                     ", got shape " + x.shape_str());
  }
  if (w.ndim != 5) {
    throw ValueError(op + "weight must be 5-D (C_in, C_out/groups, kd, kh, kw), got shape " +
                     w.shape_str());
  }
  check_conv3d_params(c, op);
  const int64_t opad[3] = {p.output_padding_d, p.output_padding_h, p.output_padding_w};
  const int64_t stride[3] = {c.stride_d, c.stride_h, c.stride_w};
  const int64_t dilation[3] = {c.dilation_d, c.dilation_h, c.dilation_w};
  for (int a = 0; a < 3; ++a) {
    if (opad[a] < 0 || (opad[a] >= stride[a] && opad[a] >= dilation[a])) {
      throw ValueError(op + "output_padding " + triple(opad[0], opad[1], opad[2]) +
                       " must be >= 0 and smaller than stride " +
                       triple(stride[0], stride[1], stride[2]) + " or dilation " +
                       triple(dilation[0], dilation[1], dilation[2]));
    }
  }
  const Geometry g = geometry(x, w, p);
  if (g.c_in % c.groups != 0) {
    throw ValueError(op + "groups=" + std::to_string(c.groups) +
                     " must divide C_in=" + std::to_string(g.c_in) + " of x " + x.shape_str());
  }
  if (w.shape[0] != g.c_in) {
    throw ValueError(op + "weight " + w.shape_str() + " expects " + std::to_string(w.shape[0]) +
                     " input channels (weight is (C_in, C_out/groups, kd, kh, kw)), but x " +
                     x.shape_str() + " has " + std::to_string(g.c_in));
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError(op + "bias must have shape (" + std::to_string(g.c_out) + ",), got " +
                     bias->shape_str());
  }
  if (g.kd < 1 || g.kh < 1 || g.kw < 1 || g.od < 1 || g.oh < 1 || g.ow < 1) {
    throw ValueError(op + "the output size " + triple(g.od, g.oh, g.ow) + " of x " + x.shape_str() +
                     " with weight " + w.shape_str() + " is not positive; reduce the padding");
  }
  const int64_t per_image = checked_mul(checked_mul(g.c_out, g.od, "output"),
                                        checked_mul(g.oh, g.ow, "output"), "output");
  checked_mul(checked_mul(g.n, per_image, "output"), 4, "output bytes");
  if (c.ndhwc) return {g.n, g.od, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.od, g.oh, g.ow};
}

void conv_transpose3d(const TensorView& x, const TensorView& w, const TensorView* bias,
                      const ConvTranspose3dParams& p, float* y) {
  const Conv3dParams& c = p.conv;
  const Geometry g = geometry(x, w, p);
  if (g.n * g.c_out * g.pixels() == 0) return;
  const float* b = bias ? bias->data : nullptr;
  if (!c.ndhwc) {
    transpose_ncdhw(x.data, w.data, b, g, p, y);
    return;
  }
  through_ncdhw(x.data, g, y, [&](const float* x_n, const Geometry& one, float* y_n) {
    transpose_ncdhw(x_n, w.data, b, one, p, y_n);
  });
}

}  // namespace cnnfast::ops
