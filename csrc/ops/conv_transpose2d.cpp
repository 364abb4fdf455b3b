// conv_transpose2d by GEMM + col2im: validate -> output shape -> per image, group and block of
// input rows, cols = Wᵀ x (one GEMM: ocg*kh*kw x pixels in NCHW, pixels x kh*kw*ocg in NHWC),
// then every output row adds the columns of the taps that land on it (a gather, parallel over
// output rows: no races), then bias and activation in one pass.
// Output position of input (ih, iw) and tap (i, j): oh = ih*stride_h - pad_top + i*dilation_h.
#include "ops/conv_transpose2d.h"

#include <algorithm>
#include <cstring>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

// The columns of one block stay below this (L2-sized blocks of input rows).
constexpr int64_t kColumnBytes = int64_t(2) << 20;

struct Geometry {
  int64_t n, c_in, h, w, c_out, icg, ocg, kh, kw, oh, ow;
  int64_t taps() const { return kh * kw; }
};

std::string hw(const ConvTransposeParams& p, int64_t h, int64_t w) {
  if (p.conv.conv1d) return std::to_string(w);
  return "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
}

std::string op_name(const ConvTransposeParams& p) {
  return p.conv.conv1d ? "conv_transpose1d" : "conv_transpose2d";
}

Geometry geometry(const TensorView& x, const TensorView& w, const ConvTransposeParams& p) {
  const Conv2dParams& c = p.conv;
  Geometry g;
  g.n = x.shape[0];
  g.c_in = c.nhwc ? x.shape[3] : x.shape[1];
  g.h = c.nhwc ? x.shape[1] : x.shape[2];
  g.w = c.nhwc ? x.shape[2] : x.shape[3];
  g.icg = c.groups > 0 ? g.c_in / c.groups : 0;
  g.ocg = w.shape[1];
  g.c_out = g.ocg * c.groups;
  g.kh = w.shape[2];
  g.kw = w.shape[3];
  g.oh = (g.h - 1) * c.stride_h - c.pad_top - c.pad_bottom + c.dilation_h * (g.kh - 1) +
         p.output_padding_h + 1;
  g.ow = (g.w - 1) * c.stride_w - c.pad_left - c.pad_right + c.dilation_w * (g.kw - 1) +
         p.output_padding_w + 1;
  return g;
}

// Input index (ih) whose tap i lands on output o: (o + pad - i*dilation) / stride when that
// divides exactly and lies in [lo, hi); -1 otherwise.
int64_t source(int64_t o, int64_t pad, int64_t i, int64_t dilation, int64_t stride, int64_t lo,
               int64_t hi) {
  const int64_t t = o + pad - i * dilation;
  if (t < 0 || t % stride) return -1;
  const int64_t ih = t / stride;
  return ih >= lo && ih < hi ? ih : -1;
}

// NCHW: cols[(oc*kh + i)*kw + j][(ih - r0)*W + iw] for input rows [r0, r1) of one group, added
// into the group's output planes y_g (ocg planes of OH x OW).
void gather_nchw(const float* cols, const Geometry& g, const Conv2dParams& c, int64_t r0,
                 int64_t r1, float* y_g) {
  const int64_t block = (r1 - r0) * g.w;
  // Output rows the block reaches.
  const int64_t first = std::max<int64_t>(0, r0 * c.stride_h - c.pad_top);
  const int64_t last =
      std::min<int64_t>(g.oh, (r1 - 1) * c.stride_h - c.pad_top + c.dilation_h * (g.kh - 1) + 1);
  if (first >= last) return;
  parallel_for(g.ocg * (last - first), [&](int64_t task, int) {
    const int64_t oc = task / (last - first), oh = first + task % (last - first);
    float* row = y_g + (oc * g.oh + oh) * g.ow;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ih = source(oh, c.pad_top, i, c.dilation_h, c.stride_h, r0, r1);
      if (ih < 0) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* src = cols + ((oc * g.kh + i) * g.kw + j) * block + (ih - r0) * g.w;
        // ow = iw*stride_w + offset for the iw with 0 <= ow < OW.
        // ow = iw*stride_w + offset: the iw whose ow lies in [0, OW) (inside_range's
        // question asked backwards), a strided add along the row.
        const int64_t offset = j * c.dilation_w - c.pad_left;
        const auto [lo, hi] = inside_range(offset, c.stride_w, g.ow, g.w);
        for (int64_t iw = lo; iw < hi; ++iw) row[iw * c.stride_w + offset] += src[iw];
      }
    }
  });
}

// NHWC: cols[(ih - r0)*W + iw][(i*kw + j)*ocg + oc], added into y's channels of group grp.
void gather_nhwc(const float* cols, const Geometry& g, const Conv2dParams& c, int64_t r0,
                 int64_t r1, int64_t n, int64_t grp, float* y) {
  const int64_t width = g.taps() * g.ocg;
  const int64_t first = std::max<int64_t>(0, r0 * c.stride_h - c.pad_top);
  const int64_t last =
      std::min<int64_t>(g.oh, (r1 - 1) * c.stride_h - c.pad_top + c.dilation_h * (g.kh - 1) + 1);
  if (first >= last) return;
  parallel_for(last - first, [&](int64_t task, int) {
    const int64_t oh = first + task;
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      float* dst = y + ((n * g.oh + oh) * g.ow + ow) * g.c_out + grp * g.ocg;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = source(oh, c.pad_top, i, c.dilation_h, c.stride_h, r0, r1);
        if (ih < 0) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t iw = source(ow, c.pad_left, j, c.dilation_w, c.stride_w, 0, g.w);
          if (iw < 0) continue;
          const float* src = cols + ((ih - r0) * g.w + iw) * width + (i * g.kw + j) * g.ocg;
          for (int64_t oc = 0; oc < g.ocg; ++oc) dst[oc] += src[oc];
        }
      }
    }
  });
}

}  // namespace

std::vector<int64_t> conv_transpose2d_output_shape(const TensorView& x, const TensorView& w,
                                                   const TensorView* bias,
                                                   const ConvTransposeParams& p) {
  const Conv2dParams& c = p.conv;
  const std::string op = op_name(p) + ": ";
  if (x.ndim != 4)
    throw ValueError(op + "x must be " + (c.conv1d ? "3" : "4") + "-D, got shape " + x.shape_str());
  if (w.ndim != 4) {
    throw ValueError(
        op + "weight must be " +
        (c.conv1d ? "3-D (C_in, C_out/groups, k)" : "4-D (C_in, C_out/groups, kh, kw)") +
        ", got shape " + w.shape_str());
  }
  if (c.groups < 1) throw ValueError(op + "groups must be >= 1, got " + std::to_string(c.groups));
  if (c.stride_h < 1 || c.stride_w < 1) {
    throw ValueError(op + "stride must be >= 1, got " + hw(p, c.stride_h, c.stride_w));
  }
  if (c.dilation_h < 1 || c.dilation_w < 1) {
    throw ValueError(op + "dilation must be >= 1, got " + hw(p, c.dilation_h, c.dilation_w));
  }
  if (c.pad_top < 0 || c.pad_bottom < 0 || c.pad_left < 0 || c.pad_right < 0) {
    throw ValueError(op + "padding must be >= 0");
  }
  if (p.output_padding_h < 0 || p.output_padding_w < 0 ||
      (p.output_padding_h >= c.stride_h && p.output_padding_h >= c.dilation_h) ||
      (p.output_padding_w >= c.stride_w && p.output_padding_w >= c.dilation_w)) {
    throw ValueError(op + "output_padding " + hw(p, p.output_padding_h, p.output_padding_w) +
                     " must be >= 0 and smaller than stride " + hw(p, c.stride_h, c.stride_w) +
                     " or dilation " + hw(p, c.dilation_h, c.dilation_w));
  }
  const Geometry g = geometry(x, w, p);
  if (g.c_in % c.groups != 0) {
    throw ValueError(op + "groups=" + std::to_string(c.groups) +
                     " must divide C_in=" + std::to_string(g.c_in) + " of x " + x.shape_str());
  }
  if (w.shape[0] != g.c_in) {
    throw ValueError(op + "weight " + w.shape_str() + " expects " + std::to_string(w.shape[0]) +
                     " input channels (weight is (C_in, C_out/groups, kh, kw)), but x " +
                     x.shape_str() + " has " + std::to_string(g.c_in));
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError(op + "bias must have shape (" + std::to_string(g.c_out) + ",), got " +
                     bias->shape_str());
  }
  if (g.kh < 1 || g.kw < 1 || g.oh < 1 || g.ow < 1) {
    throw ValueError(op + "the output size " + hw(p, g.oh, g.ow) + " of x " + x.shape_str() +
                     " with weight " + w.shape_str() + " is not positive; reduce the padding");
  }
  checked_mul(checked_mul(g.n, g.c_out, "output"), checked_mul(g.oh, g.ow, "output"), "output");
  if (c.nhwc) return {g.n, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.oh, g.ow};
}

void conv_transpose2d(const TensorView& x, const TensorView& w, const TensorView* bias,
                      const ConvTransposeParams& p, float* y) {
  const Conv2dParams& c = p.conv;
  const Geometry g = geometry(x, w, p);
  const int64_t out_total = g.n * g.c_out * g.oh * g.ow;
  if (out_total == 0) return;
  std::memset(y, 0, sizeof(float) * size_t(out_total));
  const int64_t m = g.ocg * g.taps();  // columns per input pixel
  if (x.numel() > 0 && m > 0) {
    const int64_t rows_per_block = std::clamp<int64_t>(
        kColumnBytes / int64_t(sizeof(float)) / std::max<int64_t>(1, m * g.w), 1, g.h);
    AlignedBuffer cols_buffer(sizeof(float) * size_t(m * rows_per_block * g.w));
    float* cols = static_cast<float*>(cols_buffer.data());
    // NHWC needs the weights as (icg, (i, j, oc)) per group: reordered once.
    std::vector<float> w_nhwc;
    if (c.nhwc) {
      w_nhwc.resize(size_t(g.c_in * m));
      for (int64_t ci = 0; ci < g.c_in; ++ci) {
        for (int64_t oc = 0; oc < g.ocg; ++oc) {
          for (int64_t t = 0; t < g.taps(); ++t) {
            w_nhwc[size_t(ci * m + t * g.ocg + oc)] = w.data[(ci * g.ocg + oc) * g.taps() + t];
          }
        }
      }
    }
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t grp = 0; grp < c.groups; ++grp) {
        for (int64_t r0 = 0; r0 < g.h; r0 += rows_per_block) {
          const int64_t r1 = std::min(g.h, r0 + rows_per_block), block = (r1 - r0) * g.w;
          if (c.nhwc) {
            const float* x_block = x.data + ((n * g.h + r0) * g.w) * g.c_in + grp * g.icg;
            sgemm(block, m, g.icg, {x_block, g.c_in, 1}, {w_nhwc.data() + grp * g.icg * m, m, 1},
                  cols, m, kNoEpilogue);
            gather_nhwc(cols, g, c, r0, r1, n, grp, y);
          } else {
            // A = W_gᵀ: element (m, k) = w[grp*icg + k][m] (weight rows are (C_in, ocg*taps)).
            const float* x_block = x.data + ((n * g.c_in + grp * g.icg) * g.h + r0) * g.w;
            sgemm(m, block, g.icg, {w.data + grp * g.icg * m, 1, m}, {x_block, g.h * g.w, 1}, cols,
                  block, kNoEpilogue);
            gather_nchw(cols, g, c, r0, r1, y + (n * g.c_out + grp * g.ocg) * g.oh * g.ow);
          }
        }
      }
    }
  }
  // Bias and activation: one pass.
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  const int64_t pixels = g.oh * g.ow;
  if (c.nhwc) {
    std::vector<float> zeros(size_t(g.c_out), 0.0f), ones(size_t(g.c_out), 1.0f);
    std::vector<float> shift(size_t(g.c_out), 0.0f);
    if (bias) std::copy(bias->data, bias->data + g.c_out, shift.begin());
    parallel_for(g.n * g.oh, [&](int64_t task, int) {
      float* rows = y + task * g.ow * g.c_out;
      kern.scale_shift_rows(g.ow, g.c_out, rows, zeros.data(), zeros.data(), ones.data(),
                            shift.data(), c.activation, c.negative_slope, rows);
    });
  } else {
    parallel_for(g.n * g.c_out, [&](int64_t plane, int) {
      float* out = y + plane * pixels;
      const kernels::ChannelAffine affine{0.0f, 0.0f, 1.0f,
                                          bias ? bias->data[plane % g.c_out] : 0.0f};
      kern.scale_shift(pixels, out, affine, c.activation, c.negative_slope, out);
    });
  }
}

}  // namespace cnnfast::ops
