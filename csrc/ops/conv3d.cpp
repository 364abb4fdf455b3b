// cnnfast.conv3d: validate -> output shape -> choose algorithm -> GEMM drivers.
// Per image and group, y_g (ocg x pixels, NCDHW planes) = W_g (ocg x K) * col (K x pixels), with
// K ordered (kd, kh, kw, c) (tap-major weights, one reorder per call) and pixels = OD*OH*OW:
//   "implicit_gemm" (default): col's GEMM panels are gathered straight from x by the kernels'
//     pack_runs (conv2d's NCHW packer): no column matrix, the whole volume one GEMM;
//   "vol2col": col built a block of pixels at a time in a buffer, then the same GEMM (the simple
//     reference path). A 1x1x1 stride-1 unpadded convolution reads x itself as col.
// NDHWC: "implicit_gemm" runs the same GEMM with pixels as rows (panels of channel runs, output
// written in place); "vol2col" and "depthwise" run through NCDHW (each image transposed in,
// computed, transposed back).
#include "ops/conv3d.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "ops/conv2d.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

using Geometry = Conv3dGeometry;

// vol2col's pixel-block buffer stays below this (L2-sized, as conv2d's im2col) but holds at least
// kMinBlockPixels pixels so each GEMM is wide enough to run near peak.
constexpr int64_t kColBudgetBytes = int64_t(1) << 20;
constexpr int64_t kMinBlockPixels = 128;
// thread_workspace slots of the calling thread (the GEMM driver uses 0 and 1).
constexpr int kColumnsSlot = 2, kWeightsSlot = 3;

Geometry geometry(const TensorView& x, const TensorView& w, const Conv3dParams& p) {
  Geometry g;
  g.n = x.shape[0];
  g.c_in = p.ndhwc ? x.shape[4] : x.shape[1];
  g.d = p.ndhwc ? x.shape[1] : x.shape[2];
  g.h = p.ndhwc ? x.shape[2] : x.shape[3];
  g.w = p.ndhwc ? x.shape[3] : x.shape[4];
  g.c_out = w.shape[0];
  g.icg = w.shape[1];
  g.kd = w.shape[2];
  g.kh = w.shape[3];
  g.kw = w.shape[4];
  g.ocg = p.groups > 0 ? g.c_out / p.groups : 0;
  g.od = (g.d + p.pad_front + p.pad_back - p.dilation_d * (g.kd - 1) - 1) / p.stride_d + 1;
  g.oh = (g.h + p.pad_top + p.pad_bottom - p.dilation_h * (g.kh - 1) - 1) / p.stride_h + 1;
  g.ow = (g.w + p.pad_left + p.pad_right - p.dilation_w * (g.kw - 1) - 1) / p.stride_w + 1;
  return g;
}

bool is_pointwise(const Geometry& g, const Conv3dParams& p) {
  return g.taps() == 1 && p.stride_d == 1 && p.stride_h == 1 && p.stride_w == 1 &&
         p.pad_front == 0 && p.pad_back == 0 && p.pad_top == 0 && p.pad_bottom == 0 &&
         p.pad_left == 0 && p.pad_right == 0;
}

// "auto": one input channel per group runs the direct depthwise window (as conv2d, where depthwise
// as GEMMs was 8-50x slower: one 1-row GEMM per channel); everything else the implicit GEMM.
Conv3dAlgo choose_algo(const Geometry& g, const Conv3dParams& p) {
  if (p.algo != Conv3dAlgo::automatic) return p.algo;
  if (g.icg == 1 && p.groups > 1) return Conv3dAlgo::depthwise;
  return Conv3dAlgo::implicit_gemm;
}

// The weights with the reduction axis tap-major, (o, kd, kh, kw, c): the K order of both column
// sources. Returns w itself when the order is already that (one tap, or one channel per group).
const float* tap_major_weights(const float* w, const Geometry& g) {
  const int64_t taps = g.taps(), k = g.k();
  if (taps == 1 || g.icg == 1) return w;
  float* dst = static_cast<float*>(
      thread_workspace(kWeightsSlot, sizeof(float) * size_t(g.c_out) * size_t(k)));
  reorder_tap_major(w, g.c_out, g.icg, taps, dst);
  return dst;
}

// Where the taps of a range of output pixels read, for both column sources (so they agree
// exactly). Built once per GEMM: per tap, its depth and row offsets and the outputs of a row whose
// tap column lies inside the input row. A pixel range is cut once into output-row segments, which
// every tap then walks with no divisions.
class TapReader {
 public:
  // Output pixels [col, col + ow1 - ow0) of a range: outputs ow0..ow1-1 of row (od, oh), with
  // id0 = od*stride_d and ih0 = oh*stride_h.
  struct Segment {
    int64_t col, id0, ih0, ow0, ow1;
  };

  TapReader(const Geometry& g, const Conv3dParams& p) : g_(g), p_(p), taps_(size_t(g.taps())) {
    for (int64_t t = 0; t < g.taps(); ++t) {
      const int64_t kd = t / (g.kh * g.kw), i = t / g.kw % g.kh, j = t % g.kw;
      Tap& tap = taps_[size_t(t)];
      tap.d_offset = kd * p.dilation_d - p.pad_front;
      tap.h_offset = i * p.dilation_h - p.pad_top;
      tap.w_offset = j * p.dilation_w - p.pad_left;
      const auto inside = inside_range(tap.w_offset, p.stride_w, g.w, g.ow);
      tap.lo = inside.first;
      tap.hi = inside.second;
    }
  }

  // The output-row segments of pixels [q, q + width).
  void segments(int64_t q, int64_t width, std::vector<Segment>* out) const {
    out->clear();
    const int64_t plane = g_.oh * g_.ow;
    int64_t od = q / plane, oh = q % plane / g_.ow, ow0 = q % g_.ow;
    for (int64_t qq = q; qq < q + width;) {
      const int64_t ow1 = std::min(g_.ow, ow0 + (q + width - qq));
      out->push_back({qq - q, od * p_.stride_d, oh * p_.stride_h, ow0, ow1});
      qq += ow1 - ow0;
      ow0 = 0;
      if (++oh == g_.oh) {
        oh = 0;
        ++od;
      }
    }
  }

  // Calls fn(col, count, src) for every in-volume stretch of tap t over the segments: pixels
  // [col, col + count) read src, src + stride_w, ... (offsets within one channel's volume).
  template <class Fn>
  void for_each_run(int64_t t, const std::vector<Segment>& segments, Fn&& fn) const {
    const Tap& tap = taps_[size_t(t)];
    for (const Segment& seg : segments) {
      const int64_t id = seg.id0 + tap.d_offset, ih = seg.ih0 + tap.h_offset;
      if (id < 0 || id >= g_.d || ih < 0 || ih >= g_.h) continue;
      const int64_t lo = std::clamp(tap.lo, seg.ow0, seg.ow1);
      const int64_t hi = std::clamp(tap.hi, lo, seg.ow1);
      if (hi > lo) {
        fn(seg.col + lo - seg.ow0, hi - lo,
           (id * g_.h + ih) * g_.w + lo * p_.stride_w + tap.w_offset);
      }
    }
  }

  int64_t stride_w() const { return p_.stride_w; }

 private:
  struct Tap {
    int64_t d_offset, h_offset, w_offset, lo, hi;
  };
  const Geometry& g_;
  const Conv3dParams& p_;
  std::vector<Tap> taps_;
};

// The vol2col matrix of one image and group (K x pixels) as the GEMM's B operand, its panels
// (nr pixels by kc rows of K) gathered straight from x: per panel, each tap's in-volume stretches
// are planned once (the same for every channel), then pack_runs copies them channel by channel
// (`channel_stride` elements apart).
class Vol2colPanels final : public PanelSource {
 public:
  Vol2colPanels(const float* x_g, int64_t channel_stride, const Geometry& g, const Conv3dParams& p)
      : x_g_(x_g), channel_stride_(channel_stride), g_(g), reader_(g, p) {}

  void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst,
            const kernels::GemmKernel& kern) const override {
    std::vector<TapReader::Segment> segments;
    std::vector<kernels::PanelRun> runs;
    std::vector<int64_t> first_run(size_t(g_.taps()) + 1);
    // Only the taps this K block touches are planned.
    const int64_t t0 = k0 / g_.icg, t1 = (k0 + kc - 1) / g_.icg + 1;
    for (int64_t q = row0; q < row0 + rows; q += r, dst += r * kc) {
      reader_.segments(q, std::min<int64_t>(r, row0 + rows - q), &segments);
      runs.clear();
      for (int64_t t = t0; t < t1; ++t) {
        first_run[size_t(t)] = int64_t(runs.size());
        reader_.for_each_run(t, segments, [&](int64_t col, int64_t count, int64_t src) {
          runs.push_back({int32_t(col), int32_t(count), src});
        });
      }
      first_run[size_t(t1)] = int64_t(runs.size());
      for (int64_t kk = k0; kk < k0 + kc;) {  // one tap's channels a call
        const int64_t t = kk / g_.icg, c0 = kk % g_.icg;
        const int64_t len = std::min(g_.icg - c0, k0 + kc - kk);
        const int64_t first = first_run[size_t(t)];
        kern.pack_runs(len, x_g_ + c0 * channel_stride_, channel_stride_, reader_.stride_w(),
                       runs.data() + first, int(first_run[size_t(t) + 1] - first), r,
                       dst + (kk - k0) * r);
        kk += len;
      }
    }
  }

 private:
  const float* x_g_;  // the group's first input channel of one image
  int64_t channel_stride_;
  const Geometry& g_;
  TapReader reader_;
};

// col[row][q - q0] for rows (t, c) of one image's group and pixels [q0, q1): zeros, then each
// in-volume stretch copied. Parallel over the rows.
void vol2col(const float* x_g, const Geometry& g, const Conv3dParams& p, int64_t q0, int64_t q1,
             float* col) {
  const TapReader reader(g, p);
  std::vector<TapReader::Segment> segments;
  reader.segments(q0, q1 - q0, &segments);
  const int64_t width = q1 - q0;
  parallel_for(g.k(), [&](int64_t row, int) {
    const int64_t t = row / g.icg, c = row % g.icg;
    const float* src = x_g + c * g.volume();
    float* dst = col + row * width;
    std::fill(dst, dst + width, 0.0f);
    reader.for_each_run(t, segments, [&](int64_t at, int64_t count, int64_t offset) {
      for (int64_t v = 0; v < count; ++v) dst[at + v] = src[offset + v * p.stride_w];
    });
  });
}

void conv3d_ncdhw(const float* x, const float* w, const float* bias, const Geometry& g,
                  const Conv3dParams& p, Conv3dAlgo algo, float* y) {
  const int64_t pixels = g.pixels(), k = g.k(), volume = g.volume();
  const float* w_tap_major = tap_major_weights(w, g);
  const int64_t block =
      std::min(pixels, std::max(kMinBlockPixels, kColBudgetBytes / int64_t(sizeof(float)) /
                                                     std::max<int64_t>(k, 1)));
  float* col = algo == Conv3dAlgo::vol2col
                   ? static_cast<float*>(
                         thread_workspace(kColumnsSlot, sizeof(float) * size_t(k) * size_t(block)))
                   : nullptr;
  const bool pointwise = is_pointwise(g, p);
  for (int64_t n = 0; n < g.n; ++n) {
    const float* x_n = x + n * g.c_in * volume;
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      const float* x_g = x_n + grp * g.icg * volume;
      const MatrixRef w_g{w_tap_major + grp * g.ocg * k, k, 1};
      float* y_g = y + (n * g.c_out + grp * g.ocg) * pixels;
      const kernels::GemmEpilogue ep{bias ? bias + grp * g.ocg : nullptr, nullptr, p.activation,
                                     p.negative_slope};
      if (pointwise) {  // x's channel volumes are col itself
        sgemm(g.ocg, pixels, k, w_g, {x_g, pixels, 1}, y_g, pixels, ep);
      } else if (algo == Conv3dAlgo::implicit_gemm) {
        sgemm(g.ocg, pixels, k, w_g, Vol2colPanels(x_g, volume, g, p), y_g, pixels, ep);
      } else {
        for (int64_t q0 = 0; q0 < pixels; q0 += block) {
          const int64_t q1 = std::min(pixels, q0 + block);
          vol2col(x_g, g, p, q0, q1, col);
          sgemm(g.ocg, q1 - q0, k, w_g, {col, q1 - q0, 1}, y_g + q0, pixels, ep);
        }
      }
    }
  }
}

// ---- NDHWC ---------------------------------------------------------------------------------

// The vol2col matrix of the whole batch and one group (pixels x K, K ordered (kd, kh, kw, c)) as
// the GEMM's A operand: each panel row is an output pixel, and each tap of it one contiguous
// channel run of x (or of `zeros` in the padding), transposed into the panel by pack_rows. The
// same K order and blocking as the NCDHW GEMM, so both layouts give bitwise the same results.
class Vol2colRowsNdhwc final : public PanelSource {
 public:
  Vol2colRowsNdhwc(const float* x, const Geometry& g, const Conv3dParams& p, int64_t grp,
                   const float* zeros)
      : x_(x), g_(g), p_(p), grp_(grp), zeros_(zeros) {}

  void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst,
            const kernels::GemmKernel& kern) const override {
    constexpr int kMaxRows = kernels::kMaxPanelRows;
    int64_t image[kMaxRows], id0[kMaxRows], ih0[kMaxRows], iw0[kMaxRows];
    const float* ptrs[kMaxRows];
    const int64_t pixels = g_.pixels(), plane = g_.oh * g_.ow;
    for (int64_t q = row0; q < row0 + rows; q += r, dst += r * kc) {
      const int valid = int(std::min<int64_t>(r, row0 + rows - q));
      for (int i = 0; i < valid; ++i) {
        const int64_t qi = q + i, within = qi % pixels;
        image[i] = qi / pixels;
        id0[i] = within / plane * p_.stride_d - p_.pad_front;
        ih0[i] = within % plane / g_.ow * p_.stride_h - p_.pad_top;
        iw0[i] = within % g_.ow * p_.stride_w - p_.pad_left;
      }
      for (int64_t kk = k0; kk < k0 + kc;) {  // one tap's channel run at a time
        const int64_t t = kk / g_.icg, c0 = kk % g_.icg;
        const int64_t len = std::min(g_.icg - c0, k0 + kc - kk);
        const int64_t dd = t / (g_.kh * g_.kw) * p_.dilation_d;
        const int64_t dh = t / g_.kw % g_.kh * p_.dilation_h, dw = t % g_.kw * p_.dilation_w;
        for (int i = 0; i < valid; ++i) {
          const int64_t id = id0[i] + dd, ih = ih0[i] + dh, iw = iw0[i] + dw;
          const bool inside = id >= 0 && id < g_.d && ih >= 0 && ih < g_.h && iw >= 0 && iw < g_.w;
          ptrs[i] = inside ? x_ + (((image[i] * g_.d + id) * g_.h + ih) * g_.w + iw) * g_.c_in +
                                 grp_ * g_.icg + c0
                           : zeros_;
        }
        kern.pack_rows(valid, len, ptrs, r, dst + (kk - k0) * r);
        kk += len;
      }
    }
  }

 private:
  const float* x_;
  const Geometry& g_;
  const Conv3dParams& p_;
  int64_t grp_;
  const float* zeros_;  // at least icg zeros
};

// NDHWC implicit GEMM: y (all images' pixels x C_out) = col (pixels x K) * W_g^T per group, the
// output written in place with row stride C_out (no transposes).
void conv3d_ndhwc(const float* x, const float* w, const float* bias, const Geometry& g,
                  const Conv3dParams& p, float* y) {
  const int64_t rows = g.n * g.pixels(), k = g.k();
  const float* w_tap_major = tap_major_weights(w, g);
  const size_t zero_bytes = sizeof(float) * size_t(std::max<int64_t>(g.icg, 1));
  AlignedBuffer zero_row(zero_bytes);
  const float* zeros = static_cast<const float*>(std::memset(zero_row.data(), 0, zero_bytes));
  const bool pointwise = is_pointwise(g, p);
  for (int64_t grp = 0; grp < p.groups; ++grp) {
    // B = W_g^T (K x ocg), read through the strides of the tap-major rows: no copy.
    const MatrixRef wt_g{w_tap_major + grp * g.ocg * k, 1, k};
    const kernels::GemmEpilogue ep{nullptr, bias ? bias + grp * g.ocg : nullptr, p.activation,
                                   p.negative_slope};
    float* y_g = y + grp * g.ocg;
    if (pointwise) {  // x is already the (pixels x C_in) column matrix
      sgemm(rows, g.ocg, k, {x + grp * g.icg, g.c_in, 1}, wt_g, y_g, g.c_out, ep);
    } else {
      sgemm(rows, g.ocg, k, Vol2colRowsNdhwc(x, g, p, grp, zeros), wt_g, y_g, g.c_out, ep);
    }
  }
}

void run_ncdhw(const float* x, const float* w, const float* bias, const Geometry& g,
               const Conv3dParams& p, Conv3dAlgo algo, float* y) {
  if (algo == Conv3dAlgo::depthwise) {
    conv3d_depthwise_ncdhw(x, w, bias, g, p, y);
  } else {
    conv3d_ncdhw(x, w, bias, g, p, algo, y);
  }
}

std::string triple(int64_t a, int64_t b, int64_t c) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

}  // namespace

std::vector<std::string> conv3d_algorithms() {
  return {"auto", "implicit_gemm", "vol2col", "depthwise"};
}

Conv3dAlgo parse_conv3d_algo(const std::string& name) {
  if (name == "auto") return Conv3dAlgo::automatic;
  if (name == "implicit_gemm") return Conv3dAlgo::implicit_gemm;
  if (name == "vol2col") return Conv3dAlgo::vol2col;
  if (name == "depthwise") return Conv3dAlgo::depthwise;
  throw ValueError("conv3d: unknown algo '" + name +
                   "'; expected one of auto, implicit_gemm, vol2col, depthwise");
}

void check_conv3d_params(const Conv3dParams& p, const std::string& op) {
  if (p.groups < 1) throw ValueError(op + "groups must be >= 1, got " + std::to_string(p.groups));
  if (p.stride_d < 1 || p.stride_h < 1 || p.stride_w < 1) {
    throw ValueError(op + "stride must be >= 1, got " + triple(p.stride_d, p.stride_h, p.stride_w));
  }
  if (p.dilation_d < 1 || p.dilation_h < 1 || p.dilation_w < 1) {
    throw ValueError(op + "dilation must be >= 1, got " +
                     triple(p.dilation_d, p.dilation_h, p.dilation_w));
  }
  if (std::min({p.pad_front, p.pad_back, p.pad_top, p.pad_bottom, p.pad_left, p.pad_right}) < 0) {
    throw ValueError(op + "padding must be >= 0, got (" + std::to_string(p.pad_front) + ", " +
                     std::to_string(p.pad_back) + ", " + std::to_string(p.pad_top) + ", " +
                     std::to_string(p.pad_bottom) + ", " + std::to_string(p.pad_left) + ", " +
                     std::to_string(p.pad_right) + ")");
  }
}

std::vector<int64_t> conv3d_output_shape(const TensorView& x, const TensorView& w,
                                         const TensorView* bias, const Conv3dParams& p) {
  const std::string op = "conv3d: ";
  if (x.ndim != 5) {
    throw ValueError(op + "x must be " +
                     (p.ndhwc ? "5-D (N, D, H, W, C_in)" : "5-D (N, C_in, D, H, W)") +
                     ", got shape " + x.shape_str());
  }
  if (w.ndim != 5) {
    throw ValueError(op + "weight must be 5-D (C_out, C_in/groups, kd, kh, kw), got shape " +
                     w.shape_str());
  }
  check_conv3d_params(p, op);
  const Geometry g = geometry(x, w, p);
  if (g.c_in % p.groups != 0 || g.c_out % p.groups != 0) {
    throw ValueError(op + "groups=" + std::to_string(p.groups) +
                     " must divide both C_in=" + std::to_string(g.c_in) + " (x " + x.shape_str() +
                     ") and C_out=" + std::to_string(g.c_out) + " (weight " + w.shape_str() + ")");
  }
  if (g.icg * p.groups != g.c_in) {
    throw ValueError(op + "weight " + w.shape_str() + " with groups=" + std::to_string(p.groups) +
                     " expects " + std::to_string(g.icg * p.groups) + " input channels, but x " +
                     x.shape_str() + " has " + std::to_string(g.c_in));
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError(op + "bias must have shape (" + std::to_string(g.c_out) +
                     ",) to match weight " + w.shape_str() + ", got " + bias->shape_str());
  }
  const int64_t span_d = p.dilation_d * (g.kd - 1) + 1, span_h = p.dilation_h * (g.kh - 1) + 1;
  const int64_t span_w = p.dilation_w * (g.kw - 1) + 1;
  const int64_t padded_d = g.d + p.pad_front + p.pad_back;
  const int64_t padded_h = g.h + p.pad_top + p.pad_bottom;
  const int64_t padded_w = g.w + p.pad_left + p.pad_right;
  if (g.kd < 1 || g.kh < 1 || g.kw < 1 || span_d > padded_d || span_h > padded_h ||
      span_w > padded_w) {
    throw ValueError(op + "kernel " + triple(g.kd, g.kh, g.kw) + " with dilation " +
                     triple(p.dilation_d, p.dilation_h, p.dilation_w) + " spans " +
                     triple(span_d, span_h, span_w) + ", larger than the padded input " +
                     triple(padded_d, padded_h, padded_w) + " of x " + x.shape_str());
  }
  if (p.algo == Conv3dAlgo::depthwise && g.icg != 1) {
    throw ValueError(op +
                     "algo='depthwise' needs one input channel per group (groups == C_in); "
                     "got groups=" +
                     std::to_string(p.groups) + " for C_in=" + std::to_string(g.c_in));
  }
  const int64_t per_image = checked_mul(checked_mul(g.c_out, g.od, "conv3d output"),
                                        checked_mul(g.oh, g.ow, "conv3d output"), "conv3d output");
  checked_mul(checked_mul(g.n, per_image, "conv3d output"), 4, "conv3d output bytes");
  checked_mul(g.pixels(), std::max<int64_t>(g.k(), 1), "conv3d columns");
  if (p.ndhwc) return {g.n, g.od, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.od, g.oh, g.ow};
}

void conv3d(const TensorView& x, const TensorView& w, const TensorView* bias, const Conv3dParams& p,
            float* y) {
  const Geometry g = geometry(x, w, p);
  if (g.n * g.c_out * g.pixels() == 0) return;
  const Conv3dAlgo algo = choose_algo(g, p);
  const float* b = bias ? bias->data : nullptr;
  if (!p.ndhwc) {
    run_ncdhw(x.data, w.data, b, g, p, algo, y);
    return;
  }
  if (algo == Conv3dAlgo::implicit_gemm) {
    conv3d_ndhwc(x.data, w.data, b, g, p, y);
    return;
  }
  // NDHWC "vol2col" and "depthwise": each image through NCDHW (results bitwise equal to NCDHW).
  through_ncdhw(x.data, g, y, [&](const float* x_n, const Geometry& one, float* y_n) {
    run_ncdhw(x_n, w.data, b, one, p, algo, y_n);
  });
}

}  // namespace cnnfast::ops
