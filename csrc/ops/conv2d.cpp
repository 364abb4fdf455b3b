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
#include <vector>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "ops/activation.h"
#include "ops/gemm.h"

namespace cnnfast::ops {

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

namespace {

using Geometry = Conv2dGeometry;

// The pixel-block column buffer of "im2col" stays below this (1 MiB: L2-sized, and the
// ResNet-50 56x56x64 3x3 layer's extra memory stays under 2 MiB), but holds at least
// kMinBlockPixels pixels so each GEMM is still wide enough to run near peak.
constexpr int64_t kColBudgetBytes = int64_t(1) << 20;
constexpr int64_t kMinBlockPixels = 128;
// thread_workspace slots of the calling thread (the GEMM driver uses 0 and 1).
constexpr int kColumnsSlot = 2, kWeightsSlot = 3, kPackedWeightsSlot = 6;

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

// Grouped convolutions with at most this many input channels per group run "direct".
constexpr int64_t kDirectMaxGroupChannels = 8;

// The algorithm "auto" runs: a 1x1 stride-1 unpadded convolution is a plain GEMM on x itself;
// one input channel per group runs the direct depthwise window; a few channels per group the
// direct windows of output-channel blocks; anything else gathers GEMM panels straight from x
// (implicit_gemm: no column matrix).
Conv2dAlgo choose_algo(const Geometry& g, const Conv2dParams& p) {
  if (p.algo != Conv2dAlgo::automatic) return p.algo;
  // Depthwise as GEMMs is one 1-row GEMM per channel: 8-50x slower than the direct window on
  // MobileNet's depthwise layers (measured against torch, 1 thread).
  if (g.icg == 1 && p.groups > 1) return Conv2dAlgo::depthwise;
  // Few input channels per group: one GEMM per group has K = icg * taps and M (NCHW) or N (NHWC)
  // = ocg, mostly padding in each micro-tile. Measured against torch (1 thread, AVX-512,
  // ResNeXt-50 32x4d layers, one process): direct 1.05-3.5x at 4-8 channels per group where the
  // per-group GEMMs gave 0.6-1.7x; at 16 they tie (0.5-0.6x) and at 32 the GEMMs win.
  if (p.groups > 1 && g.icg <= kDirectMaxGroupChannels) return Conv2dAlgo::direct;
  return fits_gemm1x1(g, p) ? Conv2dAlgo::gemm1x1 : Conv2dAlgo::implicit_gemm;
}

// "im2col" builds columns for `block` pixels at a time in `data` (the calling thread's
// workspace); the other algorithms need no buffer.
struct ColumnBuffer {
  int64_t block;
  float* data;
};

ColumnBuffer column_buffer(Conv2dAlgo algo, int64_t k, int64_t pixels) {
  const int64_t block =
      std::max(kMinBlockPixels, kColBudgetBytes / int64_t(sizeof(float)) / std::max<int64_t>(k, 1));
  if (algo != Conv2dAlgo::im2col) return {block, nullptr};
  const size_t bytes = sizeof(float) * size_t(k) * size_t(std::min(block, pixels));
  return {block, static_cast<float*>(thread_workspace(kColumnsSlot, bytes))};
}

// ---- NCHW ----------------------------------------------------------------------------------

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

// Row (i, j, c) of the im2col matrix of image x_n (C, H, W) over pixels [q0, q1): tap (i, j)
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

// col[r][q - q0] for r = (i, j, c) of group `grp` and pixels q in [q0, q1) of image x_n.
void im2col_nchw(const float* x_n, const Geometry& g, const Conv2dParams& p, int64_t grp,
                 int64_t q0, int64_t q1, float* col) {
  parallel_for(g.k(), [&](int64_t r, int) {
    const int64_t t = r / g.icg;
    gather_tap_nchw(x_n, g, p, grp * g.icg + r % g.icg, t / g.kw, t % g.kw, q0, q1,
                    col + r * (q1 - q0));
  });
}

// The im2col matrix of one image and group (K x pixels) as the GEMM's B operand: its panels
// (nr pixels by kc taps) are gathered straight from x, with no column buffer ("implicit_gemm").
// Per panel and tap, the pixels that read inside the image form one run per output row (the
// same for every channel), planned once; the kernel's pack_runs then builds each panel row.
class Im2colPanelsNchw final : public PanelSource {
 public:
  Im2colPanelsNchw(const float* x_n, const Geometry& g, const Conv2dParams& p, int64_t grp)
      : x_n_(x_n), g_(g), p_(p), grp_(grp) {}

  void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst,
            const kernels::GemmKernel& kern) const override {
    const int64_t taps = g_.kh * g_.kw, plane = g_.h * g_.w;
    std::vector<kernels::PanelRun> runs;
    std::vector<int64_t> first_run(size_t(taps) + 1);
    for (int64_t q = row0; q < row0 + rows; q += r, dst += r * kc) {
      plan_panel(q, std::min<int64_t>(r, row0 + rows - q), &runs, first_run.data());
      for (int64_t kk = k0; kk < k0 + kc;) {  // K is ordered (i, j, c): one tap's channels a call
        const int64_t t = kk / g_.icg, c0 = kk % g_.icg;
        const int64_t len = std::min(g_.icg - c0, k0 + kc - kk);
        kern.pack_runs(len, x_n_ + (grp_ * g_.icg + c0) * plane, plane, p_.stride_w,
                       runs.data() + first_run[t], int(first_run[t + 1] - first_run[t]), r,
                       dst + (kk - k0) * r);
        kk += len;
      }
    }
  }

 private:
  // The runs of every tap over pixels [q, q + width); tap t's are [first_run[t], first_run[t+1]).
  void plan_panel(int64_t q, int64_t width, std::vector<kernels::PanelRun>* runs,
                  int64_t* first_run) const {
    runs->clear();
    for (int64_t t = 0; t < g_.kh * g_.kw; ++t) {
      first_run[t] = int64_t(runs->size());
      const int64_t i = t / g_.kw, offset_w = t % g_.kw * p_.dilation_w - p_.pad_left;
      const auto inside = inside_range(offset_w, p_.stride_w, g_.w, g_.ow);
      for (int64_t qq = q; qq < q + width;) {
        const int64_t oh = qq / g_.ow, ow0 = qq % g_.ow;
        const int64_t ow1 = std::min(g_.ow, ow0 + (q + width - qq));
        const int64_t ih = oh * p_.stride_h - p_.pad_top + i * p_.dilation_h;
        const int64_t lo = std::clamp(inside.first, ow0, ow1);
        const int64_t hi = std::clamp(inside.second, lo, ow1);
        if (ih >= 0 && ih < g_.h && hi > lo) {
          runs->push_back({int32_t(qq - q + lo - ow0), int32_t(hi - lo),
                           ih * g_.w + lo * p_.stride_w + offset_w});
        }
        qq += ow1 - ow0;
      }
    }
    first_run[g_.kh * g_.kw] = int64_t(runs->size());
  }

  const float* x_n_;
  const Geometry& g_;
  const Conv2dParams& p_;
  int64_t grp_;
};

// Whether the tap-major order differs from OIHW (more than one tap and one channel per group).
bool reorders_tap_major(const Geometry& g) { return g.kh * g.kw > 1 && g.icg > 1; }

// One output channel's weights (OIHW: [c][i][j]) reordered tap-major ([i][j][c]): its
// (icg x taps) block transposed by the tier's transpose kernel (the scalar loop, one float per
// cycle, took 35 % of a functional 7x7x512 3x3 convolution: perf).
void tap_major_row(const kernels::ElementwiseKernel& elementwise, const float* w, int64_t icg,
                   int64_t taps, float* dst) {
  elementwise.transpose(icg, taps, w, taps, dst, icg);
}

}  // namespace

// One task per panel of r output channels, packed by the kernel's pack_tap_major in one pass
// where it has one (AVX-512). Otherwise its rows are reordered tap-major into the thread's
// workspace (r x K floats, L2-sized), then packed from there, so no whole reordered copy is made.
void pack_conv_weights(const float* w, const Conv2dGeometry& g, int64_t groups, int r,
                       const kernels::GemmKernel& kern, float* dst, bool tap_major) {
  const int64_t k = g.k(), taps = g.kh * g.kw, rows_padded = (g.ocg + r - 1) / r * r;
  const int64_t group_floats = prepacked_floats(g.ocg, k, r), panels = rows_padded / r;
  const bool reorder = !tap_major && reorders_tap_major(g);
  const kernels::ElementwiseKernel& elementwise = kernels::elementwise_kernel_for(active_isa());
  parallel_for_elements(groups * panels, groups * g.ocg * k, [&](int64_t task, int) {
    const int64_t grp = task / panels, row0 = task % panels * r;
    const int valid = int(std::min<int64_t>(r, g.ocg - row0));
    const float* rows = w + (grp * g.ocg + row0) * k;
    if (reorder && kern.pack_tap_major) {
      kern.pack_tap_major(valid, rows, g.icg, taps, kern.kc, r, rows_padded, row0,
                          dst + grp * group_floats);
      return;
    }
    if (reorder) {
      float* buf = static_cast<float*>(thread_workspace(kWeightsSlot, sizeof(float) * r * k));
      for (int i = 0; i < valid; ++i)
        tap_major_row(elementwise, rows + i * k, g.icg, taps, buf + i * k);
      rows = buf;
    }
    for (int64_t pc = 0; pc < k; pc += kern.kc) {  // prepack_operand's layout
      const int64_t kc = std::min(kern.kc, k - pc);
      kern.pack(valid, kc, rows + pc, k, 1, r,
                dst + grp * group_floats + pc * rows_padded + row0 * kc);
    }
  });
}

namespace {

// The weights as the GEMMs read them: packed ahead by a layer (for the kernel that runs); else,
// when the GEMMs of one call would pack them more than once (NCHW: once per image and per
// column block) or the kernel packs tap-major in one pass, packed here once into the calling
// thread's workspace; else this group's tap-major rows (reordered on every call). Products into
// the output y add the residual (same layout as y) at the same offset in their epilogue.
struct GroupWeights {
  const kernels::GemmKernel* kernel = nullptr;  // set when the weights are prepacked
  const float* prepacked = nullptr;             // group grp at prepacked + grp * group_floats
  int64_t rows_padded = 0, group_floats = 0;
  const float* tap_major = nullptr;
  const float* y;
  const float* residual;

  // `packs`: how many times the call's GEMMs would pack the weights themselves.
  GroupWeights(const TensorView& w, const Geometry& g, const Conv2dParams& p, const float* out,
               int64_t packs)
      : y(out), residual(p.residual) {
    const kernels::GemmKernel& kern = kernels::gemm_kernel_for(active_isa());
    if (p.packed && p.packed->kernel == &kern) {
      kernel = &kern;
      prepacked = p.packed->group(0);
      rows_padded = p.packed->rows_padded;
      group_floats = rows_padded * g.k();
      return;
    }
    // One pass of pack_tap_major is cheaper than a tap-major copy that the GEMM then packs, even
    // when it packs only once (512@14x14 3x3: the two passes took 22 % of the call).
    if (packs <= 1 && !(reorders_tap_major(g) && kern.pack_tap_major)) {
      tap_major = tap_major_weights(w.data, g);
      return;
    }
    // NCHW: the weights are A, packed mr rows to a panel (each image's GEMMs packed all of them
    // again: 8 times a 9 MiB weight on the 7x7x512 3x3 layer at batch 8); NHWC: B, nr wide.
    const int64_t k = g.k();
    const int r = p.nhwc ? kern.nr : kern.mr;
    kernel = &kern;
    rows_padded = (g.ocg + r - 1) / r * r;
    group_floats = prepacked_floats(g.ocg, k, r);
    float* dst = static_cast<float*>(thread_workspace(
        kPackedWeightsSlot, size_t(checked_mul(checked_mul(group_floats, p.groups, "packed weight"),
                                               4, "packed weight"))));
    pack_conv_weights(w.data, g, p.groups, r, kern, dst);
    prepacked = dst;
  }

  kernels::GemmEpilogue with_residual(kernels::GemmEpilogue ep, const float* c) const {
    if (residual) ep.addend = residual + (c - y);
    return ep;
  }

  // C = W_g * b (NCHW: the weights are A) or a * W_g^T (NHWC: they are B); a and b are a
  // MatrixRef or a PanelSource.
  template <typename B>
  void times(int64_t grp, const Geometry& g, int64_t n, const B& b, float* c, int64_t ldc,
             const kernels::GemmEpilogue& group_ep) const {
    const int64_t k = g.k();
    const kernels::GemmEpilogue ep = with_residual(group_ep, c);
    if (prepacked) {
      sgemm(g.ocg, n, k, PrepackedOperand{prepacked + grp * group_floats, rows_padded}, b, c, ldc,
            ep, *kernel);
    } else {
      sgemm(g.ocg, n, k, MatrixRef{tap_major + grp * g.ocg * k, k, 1}, b, c, ldc, ep);
    }
  }
  template <typename A>
  void times_transposed(int64_t grp, const Geometry& g, int64_t m, const A& a, float* c,
                        int64_t ldc, const kernels::GemmEpilogue& group_ep) const {
    const int64_t k = g.k();
    const kernels::GemmEpilogue ep = with_residual(group_ep, c);
    if (prepacked) {
      sgemm(m, g.ocg, k, a, PrepackedOperand{prepacked + grp * group_floats, rows_padded}, c, ldc,
            ep, *kernel);
    } else {
      // B = W_g^T (K x ocg), read through the strides of the tap-major rows: no copy.
      sgemm(m, g.ocg, k, a, MatrixRef{tap_major + grp * g.ocg * k, 1, k}, c, ldc, ep);
    }
  }
};

void conv2d_nchw(const TensorView& x, const TensorView& w, const float* bias, const Geometry& g,
                 const Conv2dParams& p, Conv2dAlgo algo, float* y) {
  const int64_t pixels = g.pixels(), k = g.k();
  const auto [block, col] = column_buffer(algo, k, pixels);
  // The GEMMs pack A once per column block of kern.nc pixels (per "im2col" block).
  const int64_t nc = kernels::gemm_kernel_for(active_isa()).nc;
  const int64_t width = algo == Conv2dAlgo::im2col ? std::min(block, nc) : nc;
  const GroupWeights weights(w, g, p, y, g.n * ((pixels + width - 1) / width));
  for (int64_t n = 0; n < g.n; ++n) {
    const float* x_n = x.data + n * g.c_in * g.h * g.w;
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      float* y_g = y + (n * g.c_out + grp * g.ocg) * pixels;
      const auto ep = conv_epilogue(bias, grp, g, p);
      if (algo == Conv2dAlgo::gemm1x1) {
        const MatrixRef x_g{x_n + grp * g.icg * pixels, pixels, 1};
        weights.times(grp, g, pixels, x_g, y_g, pixels, ep);
        continue;
      }
      if (algo == Conv2dAlgo::implicit_gemm) {
        weights.times(grp, g, pixels, Im2colPanelsNchw(x_n, g, p, grp), y_g, pixels, ep);
        continue;
      }
      for (int64_t q0 = 0; q0 < pixels; q0 += block) {
        const int64_t q1 = std::min(pixels, q0 + block);
        im2col_nchw(x_n, g, p, grp, q0, q1, col);
        weights.times(grp, g, q1 - q0, MatrixRef{col, q1 - q0, 1}, y_g + q0, pixels, ep);
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

// The im2col matrix of the whole batch and one group (pixels x K, K ordered (i, j, c)) as the
// GEMM's A operand: each panel row is a pixel, and each tap of it a contiguous channel run of x
// (or of `zeros` in the padding), transposed into the panel by the kernel's pack_rows.
class Im2colPanelsNhwc final : public PanelSource {
 public:
  Im2colPanelsNhwc(const float* x, const Geometry& g, const Conv2dParams& p, int64_t grp,
                   const float* zeros, int64_t zeros_len)
      : x_(x), g_(g), p_(p), grp_(grp), zeros_(zeros), zeros_len_(zeros_len) {}

  void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst,
            const kernels::GemmKernel& kern) const override {
    constexpr int kMaxRows = kernels::kMaxPanelRows;
    int64_t image[kMaxRows], ih0[kMaxRows], iw0[kMaxRows];
    const float* ptrs[kMaxRows];
    const int64_t pixels = g_.pixels();
    for (int64_t q = row0; q < row0 + rows; q += r, dst += r * kc) {
      const int valid = int(std::min<int64_t>(r, row0 + rows - q));
      for (int i = 0; i < valid; ++i) {
        const int64_t qi = q + i;
        image[i] = qi / pixels;
        ih0[i] = qi % pixels / g_.ow * p_.stride_h - p_.pad_top;
        iw0[i] = qi % g_.ow * p_.stride_w - p_.pad_left;
      }
      for (int64_t kk = k0; kk < k0 + kc;) {  // one tap's channel run at a time
        const int64_t t = kk / g_.icg, c0 = kk % g_.icg;
        const int64_t len = std::min(g_.icg - c0, k0 + kc - kk);
        const int64_t dh = t / g_.kw * p_.dilation_h, dw = t % g_.kw * p_.dilation_w;
        if (const int64_t merged = merged_taps(t, c0, k0 + kc - kk, valid, ih0, iw0)) {
          // Several taps of one kernel row are one contiguous run of each pixel (or zeros).
          for (int i = 0; i < valid; ++i) {
            const int64_t ih = ih0[i] + dh;
            ptrs[i] = ih >= 0 && ih < g_.h
                          ? x_ + ((image[i] * g_.h + ih) * g_.w + iw0[i] + dw) * g_.c_in
                          : zeros_;
          }
          kern.pack_rows(valid, merged * g_.icg, ptrs, r, dst + (kk - k0) * r);
          kk += merged * g_.icg;
          continue;
        }
        for (int i = 0; i < valid; ++i) {
          const int64_t ih = ih0[i] + dh, iw = iw0[i] + dw;
          const bool inside = ih >= 0 && ih < g_.h && iw >= 0 && iw < g_.w;
          ptrs[i] = inside
                        ? x_ + ((image[i] * g_.h + ih) * g_.w + iw) * g_.c_in + grp_ * g_.icg + c0
                        : zeros_;
        }
        kern.pack_rows(valid, len, ptrs, r, dst + (kk - k0) * r);
        kk += len;
      }
    }
  }

 private:
  // How many taps from t on (at least 2, else 0) pack as one run per pixel: whole taps of one
  // kernel row, adjacent in memory (one group, no horizontal dilation), each pixel's row either
  // wholly inside the image horizontally or outside it vertically (then it reads zeros_). For
  // few channels (an RGB stem's 3) one transpose per tap wasted most of its 16 lanes.
  int64_t merged_taps(int64_t t, int64_t c0, int64_t k_left, int valid, const int64_t* ih0,
                      const int64_t* iw0) const {
    if (c0 != 0 || p_.groups != 1 || p_.dilation_w != 1) return 0;
    const int64_t j = t % g_.kw, dh = t / g_.kw * p_.dilation_h;
    const int64_t taps = std::min(g_.kw - j, k_left / g_.icg);
    if (taps < 2 || taps * g_.icg > zeros_len_) return 0;
    for (int i = 0; i < valid; ++i) {
      const int64_t ih = ih0[i] + dh, iw = iw0[i] + j;
      if (ih >= 0 && ih < g_.h && (iw < 0 || iw + taps > g_.w)) return 0;
    }
    return taps;
  }

  const float* x_;
  const Geometry& g_;
  const Conv2dParams& p_;
  int64_t grp_;
  const float* zeros_;  // zeros_len_ zeros: at least icg, kw * icg for merged taps
  int64_t zeros_len_;
};

// y = act(y + residual) over n elements: a residual added after the convolution's store, the
// same float operations, in the same order, as the fused epilogue.
void add_residual(float* y, const float* residual, int64_t n, const Conv2dParams& p) {
  for (int64_t i = 0; i < n; ++i) y[i] += residual[i];
  activate(y, n, p.activation, p.negative_slope);
}

// "implicit_gemm" in NHWC with at least this many input channels per group reads the GEMM's A
// in place from a zero-padded copy of the image (conv2d_in_place); fewer channels make
// a k block dozens of short runs, which the packed panels handle better (an RGB stem).
constexpr int64_t kInPlaceMinGroupChannels = 16;
// thread_workspace slots of the zero-padded copy, made this many bytes of images at a time, and
// of an NCHW task's block of output rows.
constexpr int kPaddedSlot = 9, kBlockSlot = 10;
constexpr int64_t kPaddedChunkBytes = int64_t(1) << 20;
// Runs of one k block: kc / kInPlaceMinGroupChannels whole channel runs and two partial ones.
constexpr int kMaxRuns = 256 / kInPlaceMinGroupChannels + 2;

// The tiles of one output row: mr pixels each, the last one short. The packed GEMM's tiles run on
// across rows and images; in place, short tiles cost nearly a full one (7x7 outputs: 22 % slower
// at batch 8), so the rows must fill at least kInPlaceMinFill of their tiles, and hold at least
// kInPlaceMinTiles (one tile per row, 14x14 outputs, measured no faster at 1 thread and 11 %
// slower at 2).
constexpr double kInPlaceMinFill = 0.9;
constexpr int64_t kInPlaceMinTiles = 2;

// A grouped convolution reads A in place whatever its rows: its per-group products are too
// small to pay for packing, and each group's weights are a few KiB, not streamed per tile
// (ResNeXt's 512@14x14 and 1024@7x7 3x3 with 32 groups: 1.4-1.5x faster NCHW, 1.3-1.8x NHWC
// at 1 thread, 2.5-3x at 2 threads; 14x14 at batch 8: 1.6-2.1x).
bool reads_a_in_place(const Geometry& g, Conv2dAlgo algo) {
  const kernels::GemmKernel& kern = kernels::gemm_kernel_for(active_isa());
  const int64_t tiles = (g.ow + kern.mr - 1) / kern.mr;
  const bool rows_fit =
      g.ocg < g.c_out ||
      (tiles >= kInPlaceMinTiles && double(g.ow) >= kInPlaceMinFill * double(tiles * kern.mr));
  return algo == Conv2dAlgo::implicit_gemm && g.icg >= kInPlaceMinGroupChannels && kern.kc <= 256 &&
         rows_fit;
}

// Floats from one pixel to the next in the padded copy: C rounded up to whole cache lines, and
// an odd number of lines, so that the mr pixels of a tile (mr rows of A) fall in different L1
// sets. At 256 channels (1 KiB apart) every fourth row shared its sets with the B panel's: the
// 56x56x256 3x3 layer ran 17 % slower than the packed GEMM in one A/B run, and 2-5 % faster
// with the odd stride (a noisy host: take these as direction, not size).
int64_t padded_pixel_floats(int64_t c) {
  const int64_t lines = (c + 15) / 16;
  return (lines % 2 ? lines : lines + 1) * 16;
}

// y (NHWC) = conv(x) with the GEMM's A read in place: in a zero-padded copy of the images, the
// mr pixels of a tile in one output row are mr rows of A sw*C floats apart, and each kernel tap
// shifts them by a fixed offset, so a k block of (tap, channel) values is a few runs of those
// rows (GemmUkernelSegmentsFn). No im2col panels are packed. The k blocks are the GEMM's
// (kern.kc from 0) and each is summed in the same order, so the result is bitwise that of the
// packed GEMM (and of NCHW). The weights are prepacked B panels.
// With nchw, x and y are NCHW: the padded copy is transposed from x, and each task's block of
// output rows is computed into the thread's workspace, transposed into y, and the residual (if
// any) added to it there (the fused epilogue's float operations, in its order).
void conv2d_in_place(const TensorView& x, bool nchw, const GroupWeights& weights, const float* bias,
                     const Geometry& g, const Conv2dParams& p, float* y) {
  const kernels::GemmKernel& kern = *weights.kernel;
  const kernels::ElementwiseKernel& elementwise = kernels::elementwise_kernel_for(active_isa());
  const int64_t hp = g.h + p.pad_top + p.pad_bottom, wp = g.w + p.pad_left + p.pad_right;
  const int64_t cs = padded_pixel_floats(g.c_in), image = hp * wp * cs, k = g.k();
  // Chunks of images whose padded copies take about kPaddedChunkBytes (one image at least), and
  // slack after the last: tiles read up to mr rows of A even when fewer pixels remain.
  const int64_t chunk = std::clamp<int64_t>(
      kPaddedChunkBytes / int64_t(sizeof(float)) / std::max<int64_t>(image, 1), 1, g.n);
  const int64_t slack = int64_t(kern.mr) * p.stride_w * cs;
  float* padded = static_cast<float*>(
      thread_workspace(kPaddedSlot, sizeof(float) * size_t(chunk * image + slack)));
  std::memset(padded + chunk * image, 0, sizeof(float) * size_t(slack));
  // Tasks: blocks of output rows of one image, about kern.mc pixels each (the A block the GEMM
  // keeps in L2, read by every column panel), times parts of the column panels (nr output
  // channels of one group each) when the row blocks alone leave the threads too little to share.
  // Splitting rows down to one (14x14 outputs at 2 threads) streamed all the weights per tile
  // and ran no faster than one thread.
  const int64_t panels_per_group = (g.ocg + kern.nr - 1) / kern.nr;
  const int64_t panels = p.groups * panels_per_group, wanted = 4 * get_num_threads();
  int64_t rows = std::clamp<int64_t>(kern.mc / std::max<int64_t>(g.ow, 1), 1, g.oh);
  int64_t blocks = (g.oh + rows - 1) / rows;
  const int64_t parts =
      std::clamp<int64_t>((wanted + chunk * blocks - 1) / (chunk * blocks), 1, panels);
  if (chunk * blocks * parts < wanted) {
    rows = std::max<int64_t>(1, chunk * g.oh * parts / wanted);
    blocks = (g.oh + rows - 1) / rows;
  }
  const int64_t lda = p.stride_w * cs;
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t images = std::min(chunk, g.n - n0);
    parallel_for(images * hp, [&](int64_t task, int) {
      const int64_t n = task / hp, row = task % hp, ih = row - p.pad_top;
      float* dst = padded + n * image + row * wp * cs;
      if (ih < 0 || ih >= g.h) {
        std::memset(dst, 0, sizeof(float) * size_t(wp * cs));
        return;
      }
      std::memset(dst, 0, sizeof(float) * size_t(p.pad_left * cs));
      if (nchw) {  // (C, W) of this image row -> (W, C), pixels cs apart
        elementwise.transpose(g.c_in, g.w, x.data + ((n0 + n) * g.c_in * g.h + ih) * g.w, g.h * g.w,
                              dst + p.pad_left * cs, cs);
      } else {
        const float* src = x.data + ((n0 + n) * g.h + ih) * g.w * g.c_in;
        for (int64_t iw = 0; iw < g.w; ++iw) {  // the gap after each pixel's channels is unread
          std::memcpy(dst + (p.pad_left + iw) * cs, src + iw * g.c_in,
                      sizeof(float) * size_t(g.c_in));
        }
      }
      std::memset(dst + (p.pad_left + g.w) * cs, 0, sizeof(float) * size_t(p.pad_right * cs));
    });
    parallel_for(images * blocks * parts, [&](int64_t task, int) {
      const int64_t n = n0 + task / (blocks * parts), oh0 = task / parts % blocks * rows;
      const int64_t oh1 = std::min(g.oh, oh0 + rows), part = task % parts;
      const int64_t plane = g.oh * g.ow, pixels = (oh1 - oh0) * g.ow;
      const float* image_n = padded + (n - n0) * image;
      // NCHW: the task's output rows as NHWC in this thread's workspace; NHWC: y itself.
      float* out = nchw ? static_cast<float*>(thread_workspace(
                              kBlockSlot, sizeof(float) * size_t(rows * g.ow * g.c_out)))
                        : y + (n * g.oh + oh0) * g.ow * g.c_out;
      Conv2dParams q = p;
      q.nhwc = true;  // the tiles are NHWC: bias and scale per column
      if (nchw && p.residual) q.activation = kernels::Activation::none;
      // One k block's runs: their first A element's offset from a tile's origin, and lengths.
      int64_t offset[kMaxRuns], len[kMaxRuns];
      const float* a[kMaxRuns];
      for (int64_t panel = part * panels / parts; panel < (part + 1) * panels / parts; ++panel) {
        const int64_t grp = panel / panels_per_group, jr = panel % panels_per_group * kern.nr;
        const kernels::GemmEpilogue ep = conv_epilogue(bias, grp, g, q);
        const float* w_g = weights.prepacked + grp * weights.group_floats;
        const int n_tile = int(std::min<int64_t>(kern.nr, g.ocg - jr));
        for (int64_t pc = 0; pc < k; pc += kern.kc) {
          const int64_t kc = std::min(kern.kc, k - pc);
          const bool last = pc + kc == k;
          int runs = 0;
          for (int64_t kk = pc; kk < pc + kc; ++runs) {  // K is ordered (i, j, c)
            const int64_t t = kk / g.icg, c0 = kk % g.icg;
            len[runs] = std::min(g.icg - c0, pc + kc - kk);
            offset[runs] =
                (t / g.kw * p.dilation_h * wp + t % g.kw * p.dilation_w) * cs + grp * g.icg + c0;
            kk += len[runs];
          }
          const float* b = w_g + pc * weights.rows_padded + jr * kc;
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            for (int64_t ow0 = 0; ow0 < g.ow; ow0 += kern.mr) {
              const int m_tile = int(std::min<int64_t>(kern.mr, g.ow - ow0));
              const float* origin = image_n + (oh * p.stride_h * wp + ow0 * p.stride_w) * cs;
              for (int r = 0; r < runs; ++r) a[r] = origin + offset[r];
              float* c = out + ((oh - oh0) * g.ow + ow0) * g.c_out + grp * g.ocg + jr;
              kernels::GemmEpilogue tile_ep = nchw ? ep : weights.with_residual(ep, c);
              if (ep.bias_col) tile_ep.bias_col = ep.bias_col + jr;
              if (ep.scale_col) tile_ep.scale_col = ep.scale_col + jr;
              kern.ukernel_segments(runs, a, len, lda, b, c, g.c_out, m_tile, n_tile, pc > 0,
                                    last ? &tile_ep : nullptr);
              if (last && !kernels::in_register_activation(ep.activation)) {
                for (int i = 0; i < m_tile; ++i) {
                  activate(c + i * g.c_out, n_tile, ep.activation, ep.alpha);
                }
              }
            }
          }
        }
        if (!nchw) continue;
        // This panel's channels of the block: (pixels, channels) -> (channels, pixels) in y.
        const int64_t ch0 = grp * g.ocg + jr;
        float* y_n = y + (n * g.c_out + ch0) * plane + oh0 * g.ow;
        elementwise.transpose(pixels, n_tile, out + ch0, g.c_out, y_n, plane);
        if (!p.residual) continue;
        const float* r_n = p.residual + (y_n - y);
        for (int64_t o = 0; o < n_tile; ++o)
          add_residual(y_n + o * plane, r_n + o * plane, pixels, p);
      }
    });
  }
}

// A call's weights are packed one panel of nr output channels at a time, into L2, and used at
// once, when the GEMM's rows (pixels) are few and the weights large: packing them all first
// (9.4 MB on a 512-channel 3x3 layer) wrote them to memory and read them back, 38 % of a 7x7
// layer. The rows' im2col panels are packed once and read by every weight panel.
// Measured against the whole prepack (AMD EPYC host, 1 / 2 threads): 512@7x7 3x3 1.18x /
// 1.35x, batch 2 1.09x / 1.06x, 512->512 3x3/2 on 14x14 1.12x / 1.28x; at 169-196 rows 1.00-1.11x
// on one thread but 0.93-0.98x on two (the rows are packed by one thread).
constexpr int64_t kStreamMaxRows = 128;
constexpr int64_t kStreamMinWeightBytes = int64_t(2) << 20;
// The rows' panels and each thread's weight panel (slots this path leaves unused otherwise).
constexpr int kStreamRowsSlot = kColumnsSlot, kStreamPanelSlot = kPackedWeightsSlot;

bool streams_weight_panels(const Geometry& g, const Conv2dParams& p, Conv2dAlgo algo,
                           int64_t rows) {
  const kernels::GemmKernel& kern = kernels::gemm_kernel_for(active_isa());
  return algo == Conv2dAlgo::implicit_gemm && !p.packed && kern.pack_tap_major &&
         reorders_tap_major(g) && rows <= kStreamMaxRows &&
         g.ocg * g.k() * int64_t(sizeof(float)) >= kStreamMinWeightBytes;
}

void conv2d_nhwc_streamed(const TensorView& w, const float* bias, const Geometry& g,
                          const Conv2dParams& p, const PanelSource& rows_of, int64_t grp,
                          int64_t rows, float* y) {
  const kernels::GemmKernel& kern = kernels::gemm_kernel_for(active_isa());
  const int64_t k = g.k(), taps = g.kh * g.kw;
  // The rows' panels, packed k block by k block as the GEMM reads a PrepackedOperand.
  const int64_t rows_padded = (rows + kern.mr - 1) / kern.mr * kern.mr;
  float* a = static_cast<float*>(
      thread_workspace(kStreamRowsSlot, sizeof(float) * size_t(rows_padded * k)));
  for (int64_t pc = 0; pc < k; pc += kern.kc) {
    rows_of.pack(0, rows, pc, std::min(kern.kc, k - pc), kern.mr, a + pc * rows_padded, kern);
  }
  const PrepackedOperand a_packed{a, rows_padded};
  const float* w_g = w.data + grp * g.ocg * k;
  const kernels::GemmEpilogue group_ep = conv_epilogue(bias, grp, g, p);
  parallel_for((g.ocg + kern.nr - 1) / kern.nr, [&](int64_t panel, int) {
    const int64_t col0 = panel * kern.nr;
    const int valid = int(std::min<int64_t>(kern.nr, g.ocg - col0));
    float* b = static_cast<float*>(
        thread_workspace(kStreamPanelSlot, sizeof(float) * size_t(kern.nr * k)));
    kern.pack_tap_major(valid, w_g + col0 * k, g.icg, taps, kern.kc, kern.nr, kern.nr, 0, b);
    kernels::GemmEpilogue ep = group_ep;
    if (ep.bias_col) ep.bias_col += col0;
    float* c = y + grp * g.ocg + col0;
    if (p.residual) ep.addend = p.residual + (c - y);
    sgemm(rows, valid, k, a_packed, PrepackedOperand{b, kern.nr}, c, g.c_out, ep, kern);
  });
}

void conv2d_nhwc(const TensorView& x, const TensorView& w, const float* bias, const Geometry& g,
                 const Conv2dParams& p, Conv2dAlgo algo, float* y) {
  const int64_t rows = g.n * g.pixels(), k = g.k();
  // The row the implicit gather points padding taps at (a kernel row's taps when merged).
  const int64_t zeros_len = std::max<int64_t>(g.icg * g.kw, 1);
  AlignedBuffer zero_row(sizeof(float) * size_t(zeros_len));
  const float* zeros =
      static_cast<const float*>(std::memset(zero_row.data(), 0, sizeof(float) * size_t(zeros_len)));
  if (streams_weight_panels(g, p, algo, rows)) {
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      conv2d_nhwc_streamed(w, bias, g, p, Im2colPanelsNhwc(x.data, g, p, grp, zeros, zeros_len),
                           grp, rows, y);
    }
    return;
  }
  const bool in_place = reads_a_in_place(g, algo);
  const GroupWeights weights(w, g, p, y, in_place ? 2 : 1);
  if (in_place) return conv2d_in_place(x, false, weights, bias, g, p, y);
  const auto [block, col] = column_buffer(algo, k, rows);
  for (int64_t grp = 0; grp < p.groups; ++grp) {
    const auto ep = conv_epilogue(bias, grp, g, p);
    float* y_g = y + grp * g.ocg;
    if (algo == Conv2dAlgo::gemm1x1) {  // x is already the (pixels x C_in) column matrix
      weights.times_transposed(grp, g, rows, MatrixRef{x.data + grp * g.icg, g.c_in, 1}, y_g,
                               g.c_out, ep);
      continue;
    }
    if (algo == Conv2dAlgo::implicit_gemm) {
      weights.times_transposed(grp, g, rows, Im2colPanelsNhwc(x.data, g, p, grp, zeros, zeros_len),
                               y_g, g.c_out, ep);
      continue;
    }
    for (int64_t q0 = 0; q0 < rows; q0 += block) {
      const int64_t q1 = std::min(rows, q0 + block);
      im2col_nhwc(x.data, g, p, grp, q0, q1, col);
      weights.times_transposed(grp, g, q1 - q0, MatrixRef{col, k, 1}, y_g + q0 * g.c_out, g.c_out,
                               ep);
    }
  }
}

}  // namespace

// Both layouts sum over K in this one order, so NHWC and NCHW give bitwise the same results,
// and an NHWC pixel's column is whole channel runs.
const float* tap_major_weights(const float* w, const Conv2dGeometry& g) {
  if (!reorders_tap_major(g)) return w;
  float* dst = static_cast<float*>(
      thread_workspace(kWeightsSlot, sizeof(float) * size_t(g.c_out) * size_t(g.k())));
  reorder_tap_major(w, g.c_out, g.icg, g.kh * g.kw, dst);
  return dst;
}

void reorder_tap_major(const float* w, int64_t c_out, int64_t icg, int64_t taps, float* dst) {
  // In parallel: done serially, this reorder of a 9 MiB weight kept a 7x7x512 layer from running
  // faster at 2 threads.
  const kernels::ElementwiseKernel& elementwise = kernels::elementwise_kernel_for(active_isa());
  const int64_t k = icg * taps;
  parallel_for_elements(c_out, c_out * k, [&](int64_t o, int) {
    tap_major_row(elementwise, w + o * k, icg, taps, dst + o * k);
  });
}

kernels::GemmEpilogue conv_epilogue(const float* bias, int64_t grp, const Conv2dGeometry& g,
                                    const Conv2dParams& p) {
  const float* b = bias ? bias + grp * g.ocg : nullptr;
  const float* s = p.scale ? p.scale + grp * g.ocg : nullptr;
  if (p.nhwc) return {nullptr, b, p.activation, p.negative_slope, nullptr, s};
  return {b, nullptr, p.activation, p.negative_slope, s, nullptr};
}

Conv2dGeometry conv2d_geometry(const TensorView& x, const TensorView& w, const Conv2dParams& p) {
  return geometry(x, w, p);
}

std::unique_ptr<Conv2dPackedWeight> conv2d_prepack_weight(const TensorView& w, int64_t groups,
                                                          bool nhwc) {
  Geometry g{};
  g.c_out = w.shape[0];
  g.icg = w.shape[1];
  g.kh = w.shape[2];
  g.kw = w.shape[3];
  g.c_in = g.icg * groups;
  g.ocg = g.c_out / groups;
  Conv2dParams p;
  p.groups = groups;
  const Conv2dAlgo algo = choose_algo(g, p);
  if (algo == Conv2dAlgo::direct || algo == Conv2dAlgo::depthwise) return nullptr;
  const kernels::GemmKernel& kern = kernels::gemm_kernel_for(active_isa());
  const int r = nhwc ? kern.nr : kern.mr;  // the weights are B in NHWC, A in NCHW
  const int64_t k = g.k();
  auto packed = std::make_unique<Conv2dPackedWeight>();
  packed->kernel = &kern;
  packed->nhwc = nhwc;
  packed->c_out = g.c_out;
  packed->icg = g.icg;
  packed->kh = g.kh;
  packed->kw = g.kw;
  packed->groups = groups;
  packed->rows_padded = (g.ocg + r - 1) / r * r;
  const int64_t per_group = prepacked_floats(g.ocg, k, r);
  packed->buffer = AlignedBuffer(
      size_t(checked_mul(checked_mul(per_group, groups, "packed weight"), 4, "packed weight")));
  pack_conv_weights(w.data, g, groups, r, kern, static_cast<float*>(packed->buffer.data()));
  return packed;
}

std::vector<std::string> conv2d_algorithms() {
  return {"auto", "implicit_gemm", "im2col", "gemm1x1", "depthwise", "direct"};
}

Conv2dAlgo parse_conv2d_algo(const std::string& name, const char* op) {
  if (name == "auto") return Conv2dAlgo::automatic;
  if (name == "im2col") return Conv2dAlgo::im2col;
  if (name == "gemm1x1") return Conv2dAlgo::gemm1x1;
  if (name == "implicit_gemm") return Conv2dAlgo::implicit_gemm;
  if (name == "depthwise") return Conv2dAlgo::depthwise;
  if (name == "direct") return Conv2dAlgo::direct;
  throw ValueError(std::string(op) + ": unknown algo '" + name +
                   "'; expected one of auto, implicit_gemm, im2col, gemm1x1, depthwise, direct");
}

namespace {

// Error-message pieces in the caller's terms: conv1d shows 3-D shapes and single values where
// conv2d shows 4-D shapes and (h, w) pairs.
struct Describe {
  const Conv2dParams& p;
  std::string op() const { return p.conv1d ? "conv1d" : "conv2d"; }
  // The shape without the unit H axis conv1d adds (axis 2 of NCHW / OIHW, axis 1 of NHWC).
  std::string shape(const TensorView& v, int h_axis) const {
    if (!p.conv1d || v.ndim != 4) return v.shape_str();
    TensorView t = v;
    t.ndim = 3;
    for (int d = h_axis; d < 3; ++d) t.shape[d] = v.shape[d + 1];
    return t.shape_str();
  }
  std::string x(const TensorView& v) const { return shape(v, p.nhwc ? 1 : 2); }
  std::string w(const TensorView& v) const { return shape(v, 2); }
  std::string hw(int64_t h, int64_t w) const {
    return p.conv1d ? std::to_string(w) : tuple_str(h, w);
  }
  std::string padding() const {
    const std::string lr = std::to_string(p.pad_left) + ", " + std::to_string(p.pad_right) + ")";
    if (p.conv1d) return "(" + lr;
    return "(" + std::to_string(p.pad_top) + ", " + std::to_string(p.pad_bottom) + ", " + lr;
  }
};

}  // namespace

std::vector<int64_t> conv2d_output_shape(const TensorView& x, const TensorView& w,
                                         const TensorView* bias, const Conv2dParams& p) {
  const Describe d{p};
  const std::string op = d.op() + ": ";
  if (x.ndim != 4) {
    const char* layout = p.conv1d ? (p.nhwc ? "3-D (N, L, C_in)" : "3-D (N, C_in, L)")
                                  : (p.nhwc ? "4-D (N, H, W, C_in)" : "4-D (N, C_in, H, W)");
    throw ValueError(op + "x must be " + layout + ", got shape " + x.shape_str());
  }
  if (w.ndim != 4) {
    throw ValueError(
        op + "weight must be " +
        (p.conv1d ? "3-D (C_out, C_in/groups, k)" : "4-D (C_out, C_in/groups, kh, kw)") +
        ", got shape " + w.shape_str());
  }
  if (p.groups < 1) throw ValueError(op + "groups must be >= 1, got " + std::to_string(p.groups));
  if (p.stride_h < 1 || p.stride_w < 1) {
    throw ValueError(op + "stride must be >= 1, got " + d.hw(p.stride_h, p.stride_w));
  }
  if (p.dilation_h < 1 || p.dilation_w < 1) {
    throw ValueError(op + "dilation must be >= 1, got " + d.hw(p.dilation_h, p.dilation_w));
  }
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0) {
    throw ValueError(op + "padding must be >= 0, got " + d.padding());
  }
  const Geometry g = geometry(x, w, p);
  if (g.c_in % p.groups != 0 || g.c_out % p.groups != 0) {
    throw ValueError(op + "groups=" + std::to_string(p.groups) +
                     " must divide both C_in=" + std::to_string(g.c_in) + " (x " + d.x(x) +
                     ") and C_out=" + std::to_string(g.c_out) + " (weight " + d.w(w) + ")");
  }
  if (g.icg * p.groups != g.c_in) {
    throw ValueError(op + "weight " + d.w(w) + " with groups=" + std::to_string(p.groups) +
                     " expects " + std::to_string(g.icg * p.groups) + " input channels, but x " +
                     d.x(x) + " has " + std::to_string(g.c_in));
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError(op + "bias must have shape (" + std::to_string(g.c_out) +
                     ",) to match weight " + d.w(w) + ", got " + bias->shape_str());
  }
  const int64_t span_h = p.dilation_h * (g.kh - 1) + 1, span_w = p.dilation_w * (g.kw - 1) + 1;
  const int64_t padded_h = g.h + p.pad_top + p.pad_bottom;
  const int64_t padded_w = g.w + p.pad_left + p.pad_right;
  if (g.kh < 1 || g.kw < 1 || span_h > padded_h || span_w > padded_w) {
    throw ValueError(op + "kernel " + d.hw(g.kh, g.kw) + " with dilation " +
                     d.hw(p.dilation_h, p.dilation_w) + " spans " + d.hw(span_h, span_w) +
                     ", larger than the padded input " + d.hw(padded_h, padded_w) + " of x " +
                     d.x(x));
  }
  if (p.algo == Conv2dAlgo::depthwise && g.icg != 1) {
    throw ValueError(op +
                     "algo='depthwise' needs one input channel per group (groups == C_in); "
                     "got groups=" +
                     std::to_string(p.groups) + " for C_in=" + std::to_string(g.c_in));
  }
  if (p.algo == Conv2dAlgo::gemm1x1 && !fits_gemm1x1(g, p)) {
    throw ValueError(op +
                     "algo='gemm1x1' needs a 1x1 kernel, stride 1 and no padding; got "
                     "kernel " +
                     d.hw(g.kh, g.kw) + ", stride " + d.hw(p.stride_h, p.stride_w) + ", padding " +
                     d.padding());
  }
  const int64_t total = checked_mul(checked_mul(g.n, g.c_out, "conv output"),
                                    checked_mul(g.oh, g.ow, "conv output"), "conv output");
  checked_mul(total, 4, "conv output bytes");
  checked_mul(checked_mul(g.n, g.pixels(), "conv columns"), std::max<int64_t>(g.k(), 1),
              "conv columns");
  if (p.nhwc) return {g.n, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.oh, g.ow};
}

void check_conv2d_out(const TensorView& out, const TensorView& x, const TensorView& w,
                      const TensorView* bias, const Conv2dParams& p) {
  const std::vector<int64_t> want = conv2d_output_shape(x, w, bias, p);
  bool same = out.ndim == 4;
  for (int d = 0; same && d < 4; ++d) same = out.shape[d] == want[d];
  if (!same) {
    TensorView expected = out;
    expected.ndim = 4;
    for (int d = 0; d < 4; ++d) expected.shape[d] = want[d];
    const Describe d{p};
    throw ValueError(d.op() + ": out has shape " + d.x(out) + " but the result has shape " +
                     d.x(expected));
  }
  if (out.may_overlap(x) || out.may_overlap(w) || (bias && out.may_overlap(*bias))) {
    throw ValueError(Describe{p}.op() + ": out overlaps an input; pass a separate array");
  }
  if (!out.is_contiguous()) {
    throw ValueError(Describe{p}.op() + ": out of shape " + out.shape_str() +
                     " must be C-contiguous");
  }
}

namespace {

// y = act(y + residual) over n elements, in parallel chunks.
void add_and_activate(float* y, const float* residual, int64_t n, const Conv2dParams& p) {
  constexpr int64_t kChunk = 16384;
  parallel_for((n + kChunk - 1) / kChunk, [&](int64_t chunk, int) {
    const int64_t i0 = chunk * kChunk;
    add_residual(y + i0, residual + i0, std::min(kChunk, n - i0), p);
  });
}

// An NCHW convolution whose images (input and output) are small runs on NHWC copies of them:
// the NHWC GEMM takes all the images of a chunk at once and packs the weights once per chunk
// (the NCHW GEMMs pack them per image), and gathers its panels as channel runs. Measured
// against the NCHW GEMMs in one process (avx512, 1 thread): 1.13-1.24x on ResNet-50's 14x14
// and 7x7 layers at batch 8, 1.06x on 28x28x128 3x3 at batch 1. The copies are worth it only
// when the layer does enough work per float copied (a 144->32 1x1 ran 1.4x slower), and they
// stay in L2: an image of at most kViaNhwcMaxImageBytes, chunks of at most kViaNhwcMaxBytes
// (larger images stay NCHW, which also keeps the ResNet-50 56x56x64 layer's extra memory under
// 2 MiB).
constexpr int64_t kViaNhwcMaxImageBytes = int64_t(1) << 20, kViaNhwcMaxBytes = int64_t(2) << 20;
constexpr double kViaNhwcMinFlopsPerFloat = 500;
// thread_workspace slots of the NHWC copies.
constexpr int kNhwcInSlot = 7, kNhwcOutSlot = 8;

// Images per NHWC chunk (0: run NCHW).
int64_t via_nhwc_images(const Geometry& g, const Conv2dParams& p, Conv2dAlgo algo) {
  const int64_t image_bytes = (g.c_in * g.h * g.w + g.c_out * g.pixels()) * int64_t(sizeof(float));
  const double flops_per_float = 2.0 * double(g.c_out) * double(g.k()) * double(g.pixels()) /
                                 (double(std::max<int64_t>(image_bytes, 1)) / sizeof(float));
  if (p.nhwc || image_bytes > kViaNhwcMaxImageBytes || flops_per_float < kViaNhwcMinFlopsPerFloat ||
      (algo != Conv2dAlgo::implicit_gemm && algo != Conv2dAlgo::gemm1x1)) {
    return 0;
  }
  return std::min(g.n, kViaNhwcMaxBytes / image_bytes);
}

// conv2d_nhwc on each image transposed to (H*W, C), its output transposed back to (C, OH*OW).
// NHWC and NCHW sum in the same order, so the result is bitwise the NCHW one. A residual is
// added (and the activation applied) after the transpose back: the same float operations, in
// the same order, as the fused epilogue.
void conv2d_nchw_via_nhwc(const TensorView& x, const TensorView& w, const float* bias,
                          const Geometry& g, const Conv2dParams& p, Conv2dAlgo algo, int64_t chunk,
                          float* y) {
  const int64_t in = g.c_in * g.h * g.w, out = g.c_out * g.pixels();
  float* x_t =
      static_cast<float*>(thread_workspace(kNhwcInSlot, sizeof(float) * size_t(in * chunk)));
  float* y_t =
      static_cast<float*>(thread_workspace(kNhwcOutSlot, sizeof(float) * size_t(out * chunk)));
  Conv2dParams q = p;
  q.nhwc = true;
  q.residual = nullptr;
  if (p.residual) q.activation = kernels::Activation::none;
  TensorView x_chunk = x;
  x_chunk.data = x_t;
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    Geometry part = g;
    part.n = std::min(chunk, g.n - n0);
    for (int64_t n = 0; n < part.n; ++n) {  // (C, HW) -> (HW, C)
      transpose_matrix(x.data + (n0 + n) * in, g.c_in, g.h * g.w, x_t + n * in);
    }
    conv2d_nhwc(x_chunk, w, bias, part, q, algo, y_t);
    for (int64_t n = 0; n < part.n; ++n) {  // (OHW, OC) -> (OC, OHW)
      transpose_matrix(y_t + n * out, g.pixels(), g.c_out, y + (n0 + n) * out);
    }
    if (p.residual) add_and_activate(y + n0 * out, p.residual + n0 * out, part.n * out, p);
  }
}

}  // namespace

void conv2d(const TensorView& x, const TensorView& w, const TensorView* bias, const Conv2dParams& p,
            TensorView& out) {
  const Geometry g = geometry(x, w, p);
  if (out.numel() == 0) return;
  const Conv2dAlgo algo = choose_algo(g, p);
  const float* b = bias ? bias->data : nullptr;
  // An NCHW call may compute as NHWC (reading A in place, or via NHWC copies), and then bring a
  // weight packed for NHWC: the layers pack it so (conv2d_runs_via_nhwc).
  bool in_place = !p.nhwc && reads_a_in_place(g, algo);
  int64_t chunk = via_nhwc_images(g, p, algo);
  if (const Conv2dPackedWeight* pw = p.packed) {
    if (pw->c_out != g.c_out || pw->icg != g.icg || pw->kh != g.kh || pw->kw != g.kw ||
        pw->groups != p.groups || (pw->nhwc != p.nhwc && (p.nhwc || !(chunk || in_place))) ||
        algo == Conv2dAlgo::direct || algo == Conv2dAlgo::depthwise) {
      throw ValueError(
          "conv2d: the packed weight was made for another weight shape, groups, "
          "layout or algorithm than this call's weight " +
          w.shape_str());
    }
    if (!pw->nhwc) in_place = false, chunk = 0;  // packed for the NCHW GEMMs: run them
  }
  if (algo == Conv2dAlgo::direct || algo == Conv2dAlgo::depthwise) {
    // Their epilogues take no residual: run without the activation, then one pass adds the
    // residual and applies it.
    Conv2dParams q = p;
    if (p.residual) q.activation = kernels::Activation::none;
    if (algo == Conv2dAlgo::direct) {
      conv2d_direct(x.data, w.data, b, g, q, out.data);
    } else {
      conv2d_depthwise(x.data, w.data, b, g, q, out.data);
    }
    if (p.residual) add_and_activate(out.data, p.residual, out.numel(), p);
  } else if (p.nhwc) {
    conv2d_nhwc(x, w, b, g, p, algo, out.data);
  } else if (in_place) {
    // NCHW images go through the padded NHWC copy directly (no column panels, no image copy).
    Conv2dParams q = p;
    q.nhwc = true;  // the weights are B
    conv2d_in_place(x, true, GroupWeights(w, g, q, out.data, 2), b, g, p, out.data);
  } else if (chunk) {
    conv2d_nchw_via_nhwc(x, w, b, g, p, algo, chunk, out.data);
  } else {
    conv2d_nchw(x, w, b, g, p, algo, out.data);
  }
}

bool conv2d_runs_via_nhwc(const TensorView& x, const TensorView& w, const Conv2dParams& p) {
  const Geometry g = geometry(x, w, p);
  const Conv2dAlgo algo = choose_algo(g, p);
  return !p.nhwc && (reads_a_in_place(g, algo) || via_nhwc_images(g, p, algo) > 0);
}

std::unique_ptr<PanelSource> im2col_panels(const float* x, const Conv2dGeometry& g,
                                           const Conv2dParams& p, int64_t grp, const float* zeros) {
  if (p.nhwc) return std::make_unique<Im2colPanelsNhwc>(x, g, p, grp, zeros, g.icg);
  return std::make_unique<Im2colPanelsNchw>(x, g, p, grp);
}

}  // namespace cnnfast::ops
