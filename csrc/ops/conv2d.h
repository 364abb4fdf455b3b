// cnnfast.conv2d (and conv1d, which the Python layer maps onto it with H = 1).
// x is NCHW or NHWC, weight OIHW (PyTorch) in both; the output has x's layout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/workspace.h"
#include "kernels/gemm/gemm.h"
#include "kernels/registry.h"

namespace cnnfast::ops {

enum class Conv2dAlgo { automatic, implicit_gemm, im2col, gemm1x1, depthwise, direct };

// A layer's weight packed once (conv2d_prepack_weight) in the panels the GEMM algorithms read
// for `kernel`: per group, its output channels' tap-major rows as one PrepackedOperand (A in
// NCHW, B in NHWC), so a call neither reorders nor packs the weight. A call on another kernel
// (a max_isa cap) uses the OIHW weight instead.
struct Conv2dPackedWeight {
  const kernels::GemmKernel* kernel;
  bool nhwc;
  int64_t c_out, icg, kh, kw, groups;
  int64_t rows_padded;  // per group: output channels rounded up to the panel width
  AlignedBuffer buffer;
  const float* group(int64_t grp) const {
    return static_cast<const float*>(buffer.data()) + grp * rows_padded * icg * kh * kw;
  }
};

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  kernels::Activation activation = kernels::Activation::none;
  float negative_slope = 0.01f;
  bool nhwc = false;
  // Called as conv1d (H = 1): errors name conv1d and show 3-D shapes.
  bool conv1d = false;
  Conv2dAlgo algo = Conv2dAlgo::automatic;
  // Optional per-output-channel factor applied before the bias: y = act(conv * scale + bias)
  // (conv_bn_act: a batch norm folded in without rewriting the weights). C_out values.
  const float* scale = nullptr;
  // deform_conv2d: the weight's values are already in the tap-major order (o, i, j, c) (its
  // shape stays OIHW): nn.DeformConv2d packed them once with conv2d_pack_weight.
  bool weight_tap_major = false;
  // The weight packed for the GEMM (the weight argument is then its OIHW original).
  const Conv2dPackedWeight* packed = nullptr;
  // Optional array of the output's shape and layout added before the activation:
  // y = act(conv * scale + bias + residual) (ResNet's shortcut fused into the block's last
  // convolution: no separate add and activation passes). Must not overlap the output.
  const float* residual = nullptr;
};

// Sizes of one convolution, derived from x, weight and the parameters.
struct Conv2dGeometry {
  int64_t n, c_in, h, w;  // input
  int64_t c_out, kh, kw;  // weight
  int64_t oh, ow;         // output
  int64_t icg, ocg;       // channels per group
  int64_t pixels() const { return oh * ow; }
  int64_t k() const { return icg * kh * kw; }  // GEMM reduction length per group
};

// The outputs o in [first, second) of one axis whose input index o*stride + offset lies in
// [0, size): where one kernel tap reads inside the image rather than the padding.
std::pair<int64_t, int64_t> inside_range(int64_t offset, int64_t stride, int64_t size, int64_t out);

// The "depthwise" algorithm (one input channel per group, any channel multiplier): a direct
// sliding window, summing the taps in the same order in both layouts (ops/conv2d_depthwise.cpp).
void conv2d_depthwise(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                      const Conv2dParams& p, float* y);

// The sizes of a convolution whose arguments conv2d_output_shape has accepted.
Conv2dGeometry conv2d_geometry(const TensorView& x, const TensorView& w, const Conv2dParams& p);

// The "direct" algorithm (any groups, stride, padding, dilation): blocks of output channel
// planes from their windows, NCHW natively, NHWC through NCHW (ops/conv2d_direct.cpp).
void conv2d_direct(const float* x, const float* w, const float* bias, const Conv2dGeometry& g,
                   const Conv2dParams& p, float* y);

// The weights with the reduction axis tap-major, (o, i, j, c), for every group: row o is the K
// reduction values of output channel o, in the calling thread's workspace slot 3 (valid until
// the thread's next call). Returns w itself when the order is already that (1x1 kernels, one
// channel per group).
const float* tap_major_weights(const float* w, const Conv2dGeometry& g);

// The same for any kernel rank: rows [o][c][t] (icg channels x taps) -> [o][t][c], written to
// dst (c_out * icg * taps floats), output channels in parallel.
void reorder_tap_major(const float* w, int64_t c_out, int64_t icg, int64_t taps, float* dst);

// The weights w (OIHW, or already tap-major when `tap_major`; `groups` groups) packed for the
// GEMMs as prepack_operand packs the tap-major rows of each group: r rows to a panel (kern.mr
// when they are A, kern.nr when B), group g at dst + g * prepacked_floats(ocg, K, r).
void pack_conv_weights(const float* w, const Conv2dGeometry& g, int64_t groups, int r,
                       const kernels::GemmKernel& kern, float* dst, bool tap_major = false);
// The GEMM epilogue of group `grp`: bias and scale (one per output channel) along the rows of
// C (NCHW: rows are channels) or its columns (NHWC), with p's activation.
kernels::GemmEpilogue conv_epilogue(const float* bias, int64_t grp, const Conv2dGeometry& g,
                                    const Conv2dParams& p);

// dst (rows x cols) = src (cols x rows) transposed, in tiles over the threads: a (C, HW) plane
// stack to (HW, C) pixels and back.
void transpose_matrix(const float* src, int64_t cols, int64_t rows, float* dst);
// One layout's op computed through the other's, image by image: compute(x_t, y_t) with image i
// of x, an (a x b) matrix, transposed into x_t (b x a), and then y_t, (c x d), transposed into
// image i of y (d x c). x_t and y_t are `buffer` (a*b + c*d floats), y_t right after x_t.
template <class Fn>
void through_transposed(const float* x, int64_t images, int64_t a, int64_t b, float* y, int64_t c,
                        int64_t d, float* buffer, Fn&& compute) {
  float* x_t = buffer;
  float* y_t = buffer + a * b;
  for (int64_t i = 0; i < images; ++i) {
    transpose_matrix(x + i * a * b, a, b, x_t);
    compute(static_cast<const float*>(x_t), y_t);
    transpose_matrix(y_t, c, d, y + i * c * d);
  }
}

class PanelSource;

// The implicit GEMM's im2col operand, for ops that run their own GEMM on a convolution's columns
// (conv_transpose2d's stride phases). NCHW (p.nhwc false): image x (C, H, W), group grp, panel
// rows are output pixels; NHWC: every image of x, panel rows are (image, pixel). K is ordered
// (i, j, c) (tap-major weights). g, p and `zeros` (NHWC: at least icg zeros) must outlive the
// source. Pads may be negative (the output starts inside the image): taps read inside only.
std::unique_ptr<PanelSource> im2col_panels(const float* x, const Conv2dGeometry& g,
                                           const Conv2dParams& p, int64_t grp, const float* zeros);

// The OIHW weight w (C_out, icg, kh, kw) packed for the active ISA's GEMM kernel and the layout,
// or nullptr when "auto" runs such weights with a non-GEMM algorithm (depthwise, direct).
std::unique_ptr<Conv2dPackedWeight> conv2d_prepack_weight(const TensorView& w, int64_t groups,
                                                          bool nhwc);

// Whether conv2d(x, w, p) on NCHW input computes as NHWC (reading a padded NHWC copy in place,
// or on NHWC copies of small images; ops/conv2d.cpp): a layer then packs its weight for NHWC.
// x and w need only their shapes (checked by conv2d_output_shape).
bool conv2d_runs_via_nhwc(const TensorView& x, const TensorView& w, const Conv2dParams& p);

// Names accepted by algo=, in the order cnnfast.conv2d_algorithms() lists them.
std::vector<std::string> conv2d_algorithms();
// Parses an algo= name; ValueError naming `op` and listing the choices otherwise.
Conv2dAlgo parse_conv2d_algo(const std::string& name, const char* op);

// Validates x, weight, bias (nullptr: none) and the parameters (ValueError naming the argument
// and the shapes) and returns the output shape in x's layout.
std::vector<int64_t> conv2d_output_shape(const TensorView& x, const TensorView& weight,
                                         const TensorView* bias, const Conv2dParams& p);
// Checks a caller's out= array: shape, C-contiguity, no overlap with the inputs.
void check_conv2d_out(const TensorView& out, const TensorView& x, const TensorView& weight,
                      const TensorView* bias, const Conv2dParams& p);
// out = act(conv2d(x, weight) + bias). x, weight, bias and out are C-contiguous (the binding
// copies other inputs once); out has the shape conv2d_output_shape returned.
void conv2d(const TensorView& x, const TensorView& weight, const TensorView* bias,
            const Conv2dParams& p, TensorView& out);

}  // namespace cnnfast::ops
