// cnnfast.deform_conv2d: validate -> output shape -> sampling plan -> GEMM over sampled panels.
// Each image is read NHWC (channels contiguous; an NCHW image is transposed once), and every
// (tap, output pixel, offset group) gets a plan entry: four corner pixels and their bilinear
// weights times the mask, computed as a panel needs it and reused for every channel of the
// offset group in the panel's k block. The GEMM reads the sampled column matrix (K ordered
// (i, j, c), like conv2d's NHWC path) as panels built tile by tile from bilinear channel runs,
// so the K x pixels column matrix never exists:
//   NCHW: y[n][g] (ocg x pixels) = W_g (ocg x K) * col^T   (col's panels are the B operand);
//   NHWC: y[n] (pixels x ocg)    = col (pixels x K) * W_g^T (col's panels are the A operand).
#include "ops/deform_conv2d.h"

#include <algorithm>
#include <climits>
#include <string>

#include "core/errors.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

// thread_workspace slots of the calling thread (GEMM: 0, 1; pack_conv_weights: 3).
constexpr int kNhwcSlot = 4, kPlanSlot = 5, kPackedSlot = 6;
// Columns of B (output pixels) per GEMM block in NCHW: the sampling reads the image at scattered
// pixels, so it keeps more of it in L2 beside a 256 KiB packed block than beside the kernel's
// 1 MiB one (64@56x56 with 4 offset groups: 6 % faster than nc = 1024, 256@28x28 3 %).
constexpr int64_t kSampledColumns = 256;
// Channels sampled per pixel into the staging rows before pack_rows moves them into the panel:
// an r x 64 staging block (at most 16 KiB) stays in L1 beside the panel it feeds.
constexpr int64_t kRunChannels = 64;
alignas(64) const float kZeros[kRunChannels] = {};

using kernels::DeformSample;
using Sample = DeformSample;

// The sizes of one call: conv2d's geometry plus the offset groups.
struct DeformGeometry {
  Conv2dGeometry conv;
  int64_t offset_groups;
  int64_t taps() const { return conv.kh * conv.kw; }
  int64_t group_channels() const { return conv.c_in / offset_groups; }  // per offset group
};

// A per-pixel input (offset, mask) of `channels` channels over the output pixels, in x's
// layout: element (n, ch, q) at data[n*channels*pixels + ch*ch_stride + q*q_stride].
struct PixelInput {
  const float* data;
  int64_t channels, pixels;
  int64_t ch_stride, q_stride;
  PixelInput(const float* data, int64_t channels, int64_t pixels, bool nhwc)
      : data(data),
        channels(channels),
        pixels(pixels),
        ch_stride(nhwc ? 1 : pixels),
        q_stride(nhwc ? channels : 1) {}
  const float* at(int64_t n, int64_t ch, int64_t q) const {
    return data + n * channels * pixels + ch * ch_stride + q * q_stride;
  }
};

// The sampled column matrix of one image and group (pixels x K, K ordered (i, j, c)) as a GEMM
// operand: each panel row is an output pixel; each tap of it is a run of channels sampled from
// the four corner runs of the NHWC image (the kernel's run, across offset groups) into staging
// rows, which the GEMM kernel's pack_rows transposes into the panel. The sampling plan of a
// panel's pixels and the taps of its k block is built just before, in L1: a whole image's plan
// (3.6 MiB on 64@56x56 with 4 offset groups) went out to L3 and back, and took 15 % of the call.
class DeformPanels final : public PanelSource {
 public:
  DeformPanels(const float* x_nhwc, const DeformGeometry& dg, const Conv2dParams& p,
               const PixelInput& offset, const PixelInput* mask, int64_t n, int64_t grp,
               const kernels::DeformKernel& kern)
      : x_(x_nhwc), dg_(dg), p_(p), offset_(offset), mask_(mask), n_(n), grp_(grp), kern_(kern) {}

  void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst,
            const kernels::GemmKernel& kern) const override {
    constexpr int kMaxRows = kernels::kMaxPanelRows;
    alignas(64) float stage[kMaxRows * kRunChannels];
    const float* ptrs[kMaxRows];
    for (int i = 0; i < kMaxRows; ++i) ptrs[i] = stage + i * kRunChannels;
    const Conv2dGeometry& g = dg_.conv;
    const int64_t og = dg_.offset_groups, group_channels = dg_.group_channels();
    const int64_t t_first = k0 / g.icg, t_count = (k0 + kc - 1) / g.icg - t_first + 1;
    Sample* plan = static_cast<Sample*>(
        thread_workspace(kPlanSlot, sizeof(Sample) * size_t(t_count * r * og)));
    for (int64_t q = row0; q < row0 + rows; q += r, dst += r * kc) {
      const int valid = int(std::min<int64_t>(r, row0 + rows - q));
      build_plan(q, valid, t_first, t_count, r, plan);
      for (int64_t kk = k0; kk < k0 + kc;) {
        // One run: channels [c, c + len) of x, all of tap t; channel c is channel `skip` of
        // offset group o. Tap t's entries of pixels q, q+1, ... are og apart.
        const int64_t t = kk / g.icg, c = grp_ * g.icg + kk % g.icg;
        const int64_t len = std::min({g.icg - kk % g.icg, k0 + kc - kk, kRunChannels});
        const int64_t o = c / group_channels, skip = c - o * group_channels;
        const Sample* samples = plan + (t - t_first) * r * og + o;
        kern_.run(valid, x_, g.c_in, samples, og, group_channels, skip, c, len, kZeros, stage,
                  kRunChannels);
        kern.pack_rows(valid, len, ptrs, r, dst + (kk - k0) * r);
        kk += len;
      }
    }
  }

 private:
  // plan[(tl*r + i)*og + o]: tap t_first + tl, offset group o of output pixel q + i (i < count),
  // one output row's stretch of pixels at a time through the kernel's plan.
  void build_plan(int64_t q, int count, int64_t t_first, int64_t t_count, int r,
                  Sample* plan) const {
    const Conv2dGeometry& g = dg_.conv;
    const int64_t og = dg_.offset_groups, taps = dg_.taps();
    for (int64_t a = q; a < q + count;) {
      const int64_t oh = a / g.ow, ow = a % g.ow, stretch = std::min(g.ow - ow, q + count - a);
      for (int64_t tl = 0; tl < t_count; ++tl) {
        const int64_t t = t_first + tl;
        // The grid point of tap t at (oh, ow) as torchvision forms it, before the offset is added.
        const float y = float(oh * p_.stride_h - p_.pad_top + t / g.kw * p_.dilation_h);
        const int64_t x0 = t % g.kw * p_.dilation_w - p_.pad_left + ow * p_.stride_w;
        for (int64_t o = 0; o < og; ++o) {
          const int64_t ch = o * taps + t;
          kern_.plan(stretch, y, x0, p_.stride_w, offset_.at(n_, 2 * ch, a),
                     offset_.at(n_, 2 * ch + 1, a), offset_.q_stride,
                     mask_ ? mask_->at(n_, ch, a) : nullptr, mask_ ? mask_->q_stride : 0, g.h, g.w,
                     plan + (tl * r + (a - q)) * og + o, og);
        }
      }
      a += stretch;
    }
  }

  const float* x_;
  const DeformGeometry& dg_;
  const Conv2dParams& p_;
  const PixelInput& offset_;
  const PixelInput* mask_;
  int64_t n_, grp_;
  const kernels::DeformKernel& kern_;
};

std::string pair_str(int64_t a, int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// The groups torchvision infers: C_in / weight.shape[1] (validated by the caller).
Conv2dParams with_groups(const TensorView& x, const TensorView& w, Conv2dParams p) {
  const int64_t c_in = p.nhwc ? x.shape[3] : x.shape[1];
  p.groups = w.shape[1] > 0 ? c_in / w.shape[1] : 1;
  return p;
}

// Checks a per-pixel input (offset or mask) against its expected (N, channels, oh, ow) shape
// in x's layout.
void check_pixel_input(const TensorView& v, const char* name, const char* channels_desc, int64_t n,
                       int64_t channels, int64_t oh, int64_t ow, bool nhwc) {
  const bool ok = v.ndim == 4 && v.shape[0] == n && v.shape[nhwc ? 3 : 1] == channels &&
                  v.shape[nhwc ? 1 : 2] == oh && v.shape[nhwc ? 2 : 3] == ow;
  if (ok) return;
  const std::string c = std::string(channels_desc) + "=" + std::to_string(channels);
  const std::string want = nhwc ? "(N, H_out, W_out, " + c + ") = (" + std::to_string(n) + ", " +
                                      std::to_string(oh) + ", " + std::to_string(ow) + ", " +
                                      std::to_string(channels) + ")"
                                : "(N, " + c + ", H_out, W_out) = (" + std::to_string(n) + ", " +
                                      std::to_string(channels) + ", " + std::to_string(oh) + ", " +
                                      std::to_string(ow) + ")";
  throw ValueError(std::string("deform_conv2d: ") + name + " must have shape " + want + ", got " +
                   v.shape_str());
}

}  // namespace

std::vector<int64_t> deform_conv2d_output_shape(const TensorView& x, const TensorView& offset,
                                                const TensorView& w, const TensorView* bias,
                                                const TensorView* mask, const Conv2dParams& p) {
  const std::string op = "deform_conv2d: ";
  if (x.ndim != 4) {
    throw ValueError(op + "x must be " + (p.nhwc ? "4-D (N, H, W, C_in)" : "4-D (N, C_in, H, W)") +
                     ", got shape " + x.shape_str());
  }
  if (w.ndim != 4) {
    throw ValueError(op + "weight must be 4-D (C_out, C_in/groups, kh, kw), got shape " +
                     w.shape_str());
  }
  if (p.stride_h < 1 || p.stride_w < 1) {
    throw ValueError(op + "stride must be >= 1, got " + pair_str(p.stride_h, p.stride_w));
  }
  if (p.dilation_h < 1 || p.dilation_w < 1) {
    throw ValueError(op + "dilation must be >= 1, got " + pair_str(p.dilation_h, p.dilation_w));
  }
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0) {
    throw ValueError(op + "padding must be >= 0, got (" + std::to_string(p.pad_top) + ", " +
                     std::to_string(p.pad_bottom) + ", " + std::to_string(p.pad_left) + ", " +
                     std::to_string(p.pad_right) + ")");
  }
  const int64_t c_in = p.nhwc ? x.shape[3] : x.shape[1];
  if (w.shape[1] < 1 || c_in % w.shape[1] != 0) {
    throw ValueError(op + "weight " + w.shape_str() +
                     " has C_in/groups=" + std::to_string(w.shape[1]) +
                     ", which must be >= 1 and divide C_in=" + std::to_string(c_in) + " of x " +
                     x.shape_str() + " (groups = C_in / weight.shape[1])");
  }
  const Conv2dParams pg = with_groups(x, w, p);
  const Conv2dGeometry g = conv2d_geometry(x, w, pg);
  if (g.c_out % pg.groups != 0) {
    throw ValueError(op + "C_out=" + std::to_string(g.c_out) + " of weight " + w.shape_str() +
                     " must be divisible by groups=" + std::to_string(pg.groups) +
                     " (C_in / weight.shape[1])");
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError(op + "bias must have shape (" + std::to_string(g.c_out) +
                     ",) to match weight " + w.shape_str() + ", got " + bias->shape_str());
  }
  const int64_t span_h = p.dilation_h * (g.kh - 1) + 1, span_w = p.dilation_w * (g.kw - 1) + 1;
  const int64_t padded_h = g.h + p.pad_top + p.pad_bottom;
  const int64_t padded_w = g.w + p.pad_left + p.pad_right;
  if (g.kh < 1 || g.kw < 1 || span_h > padded_h || span_w > padded_w) {
    throw ValueError(op + "kernel " + pair_str(g.kh, g.kw) + " with dilation " +
                     pair_str(p.dilation_h, p.dilation_w) + " spans " + pair_str(span_h, span_w) +
                     ", larger than the padded input " + pair_str(padded_h, padded_w) + " of x " +
                     x.shape_str());
  }
  if (g.h * g.w > INT32_MAX) {
    throw ValueError(op + "x " + x.shape_str() + " has more than 2^31 pixels per image");
  }
  const int64_t taps = g.kh * g.kw;
  const int64_t offset_channels = offset.ndim == 4 ? offset.shape[p.nhwc ? 3 : 1] : 0;
  if (offset.ndim != 4 || offset_channels < 2 * taps || offset_channels % (2 * taps) != 0) {
    throw ValueError(op + "offset must be 4-D with 2*offset_groups*kh*kw channels (a multiple " +
                     "of 2*" + std::to_string(g.kh) + "*" + std::to_string(g.kw) + "=" +
                     std::to_string(2 * taps) + "), got shape " + offset.shape_str());
  }
  const int64_t offset_groups = offset_channels / (2 * taps);
  if (c_in % offset_groups != 0) {
    throw ValueError(op + "offset_groups=" + std::to_string(offset_groups) + " (from offset " +
                     offset.shape_str() + ") must divide C_in=" + std::to_string(c_in) + " of x " +
                     x.shape_str());
  }
  check_pixel_input(offset, "offset", "2*offset_groups*kh*kw", g.n, offset_channels, g.oh, g.ow,
                    p.nhwc);
  if (mask) {
    check_pixel_input(*mask, "mask", "offset_groups*kh*kw", g.n, offset_groups * taps, g.oh, g.ow,
                      p.nhwc);
  }
  const int64_t total =
      checked_mul(checked_mul(g.n, g.c_out, "deform_conv2d output"),
                  checked_mul(g.oh, g.ow, "deform_conv2d output"), "deform_conv2d output");
  checked_mul(total, 4, "deform_conv2d output bytes");
  if (p.nhwc) return {g.n, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.oh, g.ow};
}

void deform_conv2d(const TensorView& x, const TensorView& offset, const TensorView& w,
                   const TensorView* bias, const TensorView* mask, const Conv2dParams& params,
                   TensorView& out) {
  const Conv2dParams p = with_groups(x, w, params);
  const Conv2dGeometry g = conv2d_geometry(x, w, p);
  if (out.numel() == 0) return;
  const int64_t taps = g.kh * g.kw, pixels = g.pixels(), k = g.k();
  const DeformGeometry dg{g, offset.shape[p.nhwc ? 3 : 1] / (2 * taps)};
  const PixelInput offsets{offset.data, 2 * dg.offset_groups * taps, pixels, p.nhwc};
  const PixelInput masks{mask ? mask->data : nullptr, dg.offset_groups * taps, pixels, p.nhwc};
  // The weights packed once per call for the kernel (not per image and column block), straight
  // from OIHW (pack_conv_weights reorders them tap-major a panel at a time, in L2): A panels in
  // NCHW, B panels in NHWC.
  kernels::GemmKernel gemm = kernels::gemm_kernel_for(active_isa());
  if (!p.nhwc) gemm.nc = std::min(gemm.nc, std::max<int64_t>(kSampledColumns, gemm.nr));
  const int r = p.nhwc ? gemm.nr : gemm.mr;
  const int64_t group_floats = prepacked_floats(g.ocg, k, r), rows_padded = (g.ocg + r - 1) / r * r;
  float* packed = static_cast<float*>(thread_workspace(
      kPackedSlot, size_t(checked_mul(checked_mul(group_floats, p.groups, "deform_conv2d weight"),
                                      4, "deform_conv2d weight"))));
  pack_conv_weights(w.data, g, p.groups, r, gemm, packed, p.weight_tap_major);
  const size_t image = size_t(g.c_in) * size_t(g.h) * size_t(g.w);
  float* x_nhwc =
      p.nhwc ? nullptr : static_cast<float*>(thread_workspace(kNhwcSlot, sizeof(float) * image));
  const kernels::DeformKernel& kern = kernels::deform_kernel_for(active_isa());
  for (int64_t n = 0; n < g.n; ++n) {
    const float* x_n = x.data + n * int64_t(image);
    if (!p.nhwc) transpose_matrix(x_n, g.c_in, g.h * g.w, x_nhwc);  // (C, HW) -> (HW, C)
    const float* image_nhwc = p.nhwc ? x_n : x_nhwc;
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      const DeformPanels col(image_nhwc, dg, p, offsets, mask ? &masks : nullptr, n, grp, kern);
      const PrepackedOperand w_g{packed + grp * group_floats, rows_padded};
      const auto ep = conv_epilogue(bias ? bias->data : nullptr, grp, g, p);
      if (p.nhwc) {
        float* y_g = out.data + n * pixels * g.c_out + grp * g.ocg;
        sgemm(pixels, g.ocg, k, col, w_g, y_g, g.c_out, ep, gemm);
      } else {
        float* y_g = out.data + (n * g.c_out + grp * g.ocg) * pixels;
        sgemm(g.ocg, pixels, k, w_g, col, y_g, pixels, ep, gemm);
      }
    }
  }
}

}  // namespace cnnfast::ops
