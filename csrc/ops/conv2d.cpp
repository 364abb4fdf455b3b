// cnnfast.conv2d: validate -> output shape -> choose algorithm -> GEMM drivers.
// Both algorithms are GEMMs on the SGEMM driver, laid out so the output needs no reorder:
//   NCHW: y[n][g] (oc x pixels) = W_g (oc x K, OIHW rows read in place) * col (K x pixels),
//         K ordered (c, kh, kw) like OIHW;
//   NHWC: y (pixels x oc, all images at once) = col (pixels x K) * W_g^T (K x oc),
//         K ordered (kh, kw, c) so each tap of a pixel is one contiguous channel run.
// "im2col" builds col a block of pixels at a time (at most kColBudgetBytes, so no 9x column
// matrix of the whole image); "gemm1x1" reads x itself as col (1x1, stride 1, no padding).
#include "ops/conv2d.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/errors.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

// The pixel-block column buffer of "im2col" stays below this (1 MiB: L2-sized, and the
// ResNet-50 56x56x64 3x3 layer's extra memory stays under 2 MiB), but holds at least
// kMinBlockPixels pixels so each GEMM is still wide enough to run near peak.
constexpr int64_t kColBudgetBytes = int64_t(1) << 20;
constexpr int64_t kMinBlockPixels = 128;

struct Geometry {
  int64_t n, c_in, h, w;  // input
  int64_t c_out, kh, kw;  // weight
  int64_t oh, ow;         // output
  int64_t icg, ocg;       // channels per group
  int64_t pixels() const { return oh * ow; }
  int64_t k() const { return icg * kh * kw; }  // GEMM reduction length per group
};

std::string tuple_str(int64_t a, int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

Geometry geometry(const TensorView& x, const TensorView& w, const Conv2dParams& p) {
  Geometry g;
  g.n = x.shape[0];
  g.c_in = p.nhwc ? x.shape[3] : x.shape[1];
  g.h = p.nhwc ? x.shape[1] : x.shape[2];
  g.w = p.nhwc ? x.shape[2] : x.shape[3];
  g.c_out = w.shape[0];
  g.kh = w.shape[2];
  g.kw = w.shape[3];
  g.icg = w.shape[1];
  g.ocg = p.groups > 0 ? g.c_out / p.groups : 0;
  g.oh = (g.h + p.pad_top + p.pad_bottom - p.dilation_h * (g.kh - 1) - 1) / p.stride_h + 1;
  g.ow = (g.w + p.pad_left + p.pad_right - p.dilation_w * (g.kw - 1) - 1) / p.stride_w + 1;
  return g;
}

bool fits_gemm1x1(const Geometry& g, const Conv2dParams& p) {
  return g.kh == 1 && g.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
         p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0;
}

// The algorithm "auto" runs: a 1x1 stride-1 unpadded convolution is a plain GEMM on x itself;
// otherwise NCHW gathers GEMM panels straight from x (implicit_gemm: no column matrix, faster
// than im2col on every layer of bench/shapes/conv2d.txt), and NHWC (which has no implicit path
// yet) builds columns block by block. The direct algorithm of the design is not written yet.
Conv2dAlgo choose_algo(const Geometry& g, const Conv2dParams& p) {
  if (p.algo != Conv2dAlgo::automatic) return p.algo;
  if (fits_gemm1x1(g, p)) return Conv2dAlgo::gemm1x1;
  return p.nhwc ? Conv2dAlgo::im2col : Conv2dAlgo::implicit_gemm;
}

kernels::GemmEpilogue epilogue(const float* bias_row, const float* bias_col,
                               const Conv2dParams& p) {
  return {bias_row, bias_col, p.activation, p.negative_slope};
}

// ---- NCHW ----------------------------------------------------------------------------------

// First output index o in [0, out) whose input index o*stride + offset lies in [0, size), and
// one past the last: the outputs of one axis that read inside the image for one kernel tap.
std::pair<int64_t, int64_t> inside_range(int64_t offset, int64_t stride, int64_t size,
                                         int64_t out) {
  // o*stride + offset >= 0  <=>  o >= ceil(-offset / stride)
  const int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  // o*stride + offset <= size - 1  <=>  o <= floor((size - 1 - offset) / stride)
  const int64_t hi = size - 1 - offset < 0 ? 0 : (size - 1 - offset) / stride + 1;
  return {std::min(lo, out), std::min(std::max(hi, lo), out)};
}

// One output row's pixels [ow0, ow1) of tap (i, j) for input plane row `in_row` (nullptr:
// the row is padding): zeros where the tap falls in the padding, the input elsewhere.
void gather_row(const float* in_row, int64_t ow0, int64_t ow1, int64_t offset, int64_t stride,
                std::pair<int64_t, int64_t> inside, float* dst) {
  // [lo, hi): the part of [ow0, ow1) that reads inside the image (empty for a padding row).
  const int64_t lo = in_row ? std::clamp(inside.first, ow0, ow1) : ow1;
  const int64_t hi = in_row ? std::clamp(inside.second, lo, ow1) : ow1;
  std::fill(dst, dst + (lo - ow0), 0.0f);
  if (in_row && stride == 1) {
    std::copy(in_row + lo + offset, in_row + hi + offset, dst + (lo - ow0));
  } else {
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow - ow0] = in_row[ow * stride + offset];
  }
  std::fill(dst + (hi - ow0), dst + (ow1 - ow0), 0.0f);
}

// Row r = (c, i, j) of the im2col matrix of image x_n (C, H, W) over pixels [q0, q1): tap (i, j)
// of channel c, walked one output row at a time so that each run is a contiguous copy (stride 1)
// between two zero runs.
void gather_tap_nchw(const float* x_n, const Geometry& g, const Conv2dParams& p, int64_t c,
                     int64_t i, int64_t j, int64_t q0, int64_t q1, float* dst) {
  const float* plane = x_n + c * g.h * g.w;
  const int64_t offset_w = j * p.dilation_w - p.pad_left;
  const auto inside = inside_range(offset_w, p.stride_w, g.w, g.ow);
  for (int64_t q = q0; q < q1;) {
    const int64_t oh = q / g.ow, ow0 = q % g.ow, ow1 = std::min(g.ow, ow0 + (q1 - q));
    const int64_t ih = oh * p.stride_h - p.pad_top + i * p.dilation_h;
    const float* in_row = ih >= 0 && ih < g.h ? plane + ih * g.w : nullptr;
    gather_row(in_row, ow0, ow1, offset_w, p.stride_w, inside, dst + (q - q0));
    q += ow1 - ow0;
  }
}

// col[r][q - q0] for r = (c, i, j) of group `grp` and pixels q in [q0, q1) of image x_n.
void im2col_nchw(const float* x_n, const Geometry& g, const Conv2dParams& p, int64_t grp,
                 int64_t q0, int64_t q1, float* col) {
  const int64_t taps = g.kh * g.kw;
  parallel_for(g.k(), [&](int64_t r, int) {
    gather_tap_nchw(x_n, g, p, grp * g.icg + r / taps, r % taps / g.kw, r % g.kw, q0, q1,
                    col + r * (q1 - q0));
  });
}

// The im2col matrix of one image and group (K x pixels) as the GEMM's B operand: its panels
// (nr pixels by kc taps) are gathered straight from x, with no column buffer ("implicit_gemm").
class Im2colPanelsNchw final : public PanelSource {
 public:
  Im2colPanelsNchw(const float* x_n, const Geometry& g, const Conv2dParams& p, int64_t grp)
      : x_n_(x_n), g_(g), p_(p), grp_(grp) {}

  void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst) const override {
    const int64_t taps = g_.kh * g_.kw;
    for (int64_t q = row0; q < row0 + rows; q += r, dst += r * kc) {
      const int64_t width = std::min<int64_t>(r, row0 + rows - q);
      for (int64_t pk = 0; pk < kc; ++pk) {
        const int64_t kk = k0 + pk;
        float* d = dst + pk * r;
        gather_tap_nchw(x_n_, g_, p_, grp_ * g_.icg + kk / taps, kk % taps / g_.kw, kk % g_.kw, q,
                        q + width, d);
        std::fill(d + width, d + r, 0.0f);
      }
    }
  }

 private:
  const float* x_n_;
  const Geometry& g_;
  const Conv2dParams& p_;
  int64_t grp_;
};

void conv2d_nchw(const TensorView& x, const TensorView& w, const float* bias, const Geometry& g,
                 const Conv2dParams& p, Conv2dAlgo algo, float* y) {
  const int64_t pixels = g.pixels(), k = g.k();
  const int64_t block =
      std::max(kMinBlockPixels, kColBudgetBytes / int64_t(sizeof(float)) / std::max<int64_t>(k, 1));
  float* col = algo == Conv2dAlgo::im2col
                   ? static_cast<float*>(thread_workspace(
                         2, sizeof(float) * size_t(k) * size_t(std::min(block, pixels))))
                   : nullptr;
  for (int64_t n = 0; n < g.n; ++n) {
    const float* x_n = x.data + n * g.c_in * g.h * g.w;
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      const MatrixRef w_g{w.data + grp * g.ocg * k, k, 1};
      float* y_g = y + (n * g.c_out + grp * g.ocg) * pixels;
      const auto ep = epilogue(bias ? bias + grp * g.ocg : nullptr, nullptr, p);
      if (algo == Conv2dAlgo::gemm1x1) {
        const MatrixRef x_g{x_n + grp * g.icg * pixels, pixels, 1};
        sgemm(g.ocg, pixels, k, w_g, x_g, y_g, pixels, ep);
        continue;
      }
      if (algo == Conv2dAlgo::implicit_gemm) {
        sgemm(g.ocg, pixels, k, w_g, Im2colPanelsNchw(x_n, g, p, grp), y_g, pixels, ep);
        continue;
      }
      for (int64_t q0 = 0; q0 < pixels; q0 += block) {
        const int64_t q1 = std::min(pixels, q0 + block);
        im2col_nchw(x_n, g, p, grp, q0, q1, col);
        sgemm(g.ocg, q1 - q0, k, w_g, {col, q1 - q0, 1}, y_g + q0, pixels, ep);
      }
    }
  }
}

// ---- NHWC ----------------------------------------------------------------------------------

// col[q - q0][(i, j, c)] for the pixels q in [q0, q1) of the whole batch (q = n*OH*OW + ...).
void im2col_nhwc(const float* x, const Geometry& g, const Conv2dParams& p, int64_t grp, int64_t q0,
                 int64_t q1, float* col) {
  const int64_t k = g.k(), pixels = g.pixels();
  parallel_for(q1 - q0, [&](int64_t dq, int) {
    const int64_t q = q0 + dq, n = q / pixels, oh = q % pixels / g.ow, ow = q % g.ow;
    float* dst = col + dq * k;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ih = oh * p.stride_h - p.pad_top + i * p.dilation_h;
      for (int64_t j = 0; j < g.kw; ++j, dst += g.icg) {
        const int64_t iw = ow * p.stride_w - p.pad_left + j * p.dilation_w;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) {
          std::memset(dst, 0, sizeof(float) * size_t(g.icg));
        } else {
          const float* src = x + ((n * g.h + ih) * g.w + iw) * g.c_in + grp * g.icg;
          std::memcpy(dst, src, sizeof(float) * size_t(g.icg));
        }
      }
    }
  });
}

// W_g^T as a K x ocg row-major matrix with K ordered (i, j, c): wt[(i*kw + j)*icg + c][o].
// Sixteen output channels at a time: each of their OIHW rows is read in order and each write
// fills one cache line of wt (a plain transpose, one channel at a time, ran 10x slower).
void transpose_weights_nhwc(const float* w, const Geometry& g, int64_t grp, float* wt) {
  constexpr int64_t kBlock = 16;
  const int64_t taps = g.kh * g.kw;
  for (int64_t o0 = 0; o0 < g.ocg; o0 += kBlock) {
    const int64_t o1 = std::min(g.ocg, o0 + kBlock);
    for (int64_t c = 0; c < g.icg; ++c) {
      for (int64_t t = 0; t < taps; ++t) {
        float* dst = wt + (t * g.icg + c) * g.ocg;
        for (int64_t o = o0; o < o1; ++o) dst[o] = w[((grp * g.ocg + o) * g.icg + c) * taps + t];
      }
    }
  }
}

void conv2d_nhwc(const TensorView& x, const TensorView& w, const float* bias, const Geometry& g,
                 const Conv2dParams& p, Conv2dAlgo algo, float* y) {
  const int64_t rows = g.n * g.pixels(), k = g.k();
  if (algo == Conv2dAlgo::gemm1x1) {
    // x is already the (pixels x C_in) column matrix; W_g^T is read in place from OIHW.
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      const MatrixRef x_g{x.data + grp * g.icg, g.c_in, 1};
      const MatrixRef wt_g{w.data + grp * g.ocg * g.icg, 1, g.icg};
      sgemm(rows, g.ocg, k, x_g, wt_g, y + grp * g.ocg, g.c_out,
            epilogue(nullptr, bias ? bias + grp * g.ocg : nullptr, p));
    }
    return;
  }
  const int64_t block =
      std::max(kMinBlockPixels, kColBudgetBytes / int64_t(sizeof(float)) / std::max<int64_t>(k, 1));
  AlignedBuffer wt(sizeof(float) * size_t(std::max<int64_t>(k * g.ocg, 1)));
  float* col = static_cast<float*>(
      thread_workspace(2, sizeof(float) * size_t(k) * size_t(std::min(block, rows))));
  for (int64_t grp = 0; grp < p.groups; ++grp) {
    float* wt_g = static_cast<float*>(wt.data());
    transpose_weights_nhwc(w.data, g, grp, wt_g);
    const auto ep = epilogue(nullptr, bias ? bias + grp * g.ocg : nullptr, p);
    for (int64_t q0 = 0; q0 < rows; q0 += block) {
      const int64_t q1 = std::min(rows, q0 + block);
      im2col_nhwc(x.data, g, p, grp, q0, q1, col);
      sgemm(q1 - q0, g.ocg, k, {col, k, 1}, {wt_g, g.ocg, 1}, y + q0 * g.c_out + grp * g.ocg,
            g.c_out, ep);
    }
  }
}

}  // namespace

std::vector<std::string> conv2d_algorithms() {
  return {"auto", "implicit_gemm", "im2col", "gemm1x1"};
}

Conv2dAlgo parse_conv2d_algo(const std::string& name) {
  if (name == "auto") return Conv2dAlgo::automatic;
  if (name == "im2col") return Conv2dAlgo::im2col;
  if (name == "gemm1x1") return Conv2dAlgo::gemm1x1;
  if (name == "implicit_gemm") return Conv2dAlgo::implicit_gemm;
  throw ValueError("conv2d: unknown algo '" + name +
                   "'; expected one of auto, implicit_gemm, im2col, gemm1x1");
}

std::vector<int64_t> conv2d_output_shape(const TensorView& x, const TensorView& w,
                                         const TensorView* bias, const Conv2dParams& p) {
  const char* x_layout = p.nhwc ? "(N, H, W, C_in)" : "(N, C_in, H, W)";
  if (x.ndim != 4) {
    throw ValueError(std::string("conv2d: x must be 4-D ") + x_layout + ", got shape " +
                     x.shape_str());
  }
  if (w.ndim != 4) {
    throw ValueError("conv2d: weight must be 4-D (C_out, C_in/groups, kh, kw), got shape " +
                     w.shape_str());
  }
  if (p.groups < 1)
    throw ValueError("conv2d: groups must be >= 1, got " + std::to_string(p.groups));
  if (p.stride_h < 1 || p.stride_w < 1) {
    throw ValueError("conv2d: stride must be >= 1, got " + tuple_str(p.stride_h, p.stride_w));
  }
  if (p.dilation_h < 1 || p.dilation_w < 1) {
    throw ValueError("conv2d: dilation must be >= 1, got " + tuple_str(p.dilation_h, p.dilation_w));
  }
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0) {
    throw ValueError("conv2d: padding must be >= 0, got (" + std::to_string(p.pad_top) + ", " +
                     std::to_string(p.pad_bottom) + ", " + std::to_string(p.pad_left) + ", " +
                     std::to_string(p.pad_right) + ")");
  }
  const Geometry g = geometry(x, w, p);
  if (g.c_in % p.groups != 0 || g.c_out % p.groups != 0) {
    throw ValueError("conv2d: groups=" + std::to_string(p.groups) +
                     " must divide both C_in=" + std::to_string(g.c_in) + " (x " + x.shape_str() +
                     ") and C_out=" + std::to_string(g.c_out) + " (weight " + w.shape_str() + ")");
  }
  if (g.icg * p.groups != g.c_in) {
    throw ValueError("conv2d: weight " + w.shape_str() + " with groups=" +
                     std::to_string(p.groups) + " expects " + std::to_string(g.icg * p.groups) +
                     " input channels, but x " + x.shape_str() + " has " + std::to_string(g.c_in));
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError("conv2d: bias must have shape (" + std::to_string(g.c_out) +
                     ",) to match weight " + w.shape_str() + ", got " + bias->shape_str());
  }
  const int64_t span_h = p.dilation_h * (g.kh - 1) + 1, span_w = p.dilation_w * (g.kw - 1) + 1;
  const int64_t padded_h = g.h + p.pad_top + p.pad_bottom,
                padded_w = g.w + p.pad_left + p.pad_right;
  if (g.kh < 1 || g.kw < 1 || span_h > padded_h || span_w > padded_w) {
    throw ValueError("conv2d: kernel " + tuple_str(g.kh, g.kw) + " with dilation " +
                     tuple_str(p.dilation_h, p.dilation_w) + " spans " + tuple_str(span_h, span_w) +
                     ", larger than the padded input " + tuple_str(padded_h, padded_w) + " of x " +
                     x.shape_str());
  }
  if (p.algo == Conv2dAlgo::implicit_gemm && p.nhwc) {
    throw ValueError(
        "conv2d: algo='implicit_gemm' is not available for layout='NHWC' yet; use "
        "'auto' or 'im2col'");
  }
  if (p.algo == Conv2dAlgo::gemm1x1 && !fits_gemm1x1(g, p)) {
    throw ValueError(
        "conv2d: algo='gemm1x1' needs a 1x1 kernel, stride 1 and no padding; got "
        "kernel " +
        tuple_str(g.kh, g.kw) + ", stride " + tuple_str(p.stride_h, p.stride_w) + ", padding (" +
        std::to_string(p.pad_top) + ", " + std::to_string(p.pad_bottom) + ", " +
        std::to_string(p.pad_left) + ", " + std::to_string(p.pad_right) + ")");
  }
  const int64_t total = checked_mul(checked_mul(g.n, g.c_out, "conv2d output"),
                                    checked_mul(g.oh, g.ow, "conv2d output"), "conv2d output");
  checked_mul(total, 4, "conv2d output bytes");
  checked_mul(checked_mul(g.n, g.pixels(), "conv2d columns"), std::max<int64_t>(g.k(), 1),
              "conv2d columns");
  if (p.nhwc) return {g.n, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.oh, g.ow};
}

void check_conv2d_out(const TensorView& out, const TensorView& x, const TensorView& w,
                      const TensorView* bias, const Conv2dParams& p) {
  const std::vector<int64_t> want = conv2d_output_shape(x, w, bias, p);
  bool same = out.ndim == 4;
  for (int d = 0; same && d < 4; ++d) same = out.shape[d] == want[d];
  if (!same) {
    throw ValueError("conv2d: out has shape " + out.shape_str() + " but the result has shape (" +
                     std::to_string(want[0]) + ", " + std::to_string(want[1]) + ", " +
                     std::to_string(want[2]) + ", " + std::to_string(want[3]) + ")");
  }
  if (!out.is_contiguous()) {
    throw ValueError("conv2d: out must be C-contiguous, got strides of shape " + out.shape_str());
  }
  if (out.may_overlap(x) || out.may_overlap(w) || (bias && out.may_overlap(*bias))) {
    throw ValueError("conv2d: out overlaps an input; pass a separate array");
  }
}

void conv2d(const TensorView& x, const TensorView& w, const TensorView* bias, const Conv2dParams& p,
            TensorView& out) {
  const Geometry g = geometry(x, w, p);
  if (out.numel() == 0) return;
  const Conv2dAlgo algo = choose_algo(g, p);
  const float* b = bias ? bias->data : nullptr;
  if (p.nhwc) {
    conv2d_nhwc(x, w, b, g, p, algo, out.data);
  } else {
    conv2d_nchw(x, w, b, g, p, algo, out.data);
  }
}

}  // namespace cnnfast::ops
