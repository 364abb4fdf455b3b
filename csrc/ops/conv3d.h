// cnnfast.conv3d and cnnfast.conv_transpose3d: 3-D (volume) convolutions on the GEMM engine.
// x is NCDHW or NDHWC, weight OIDHW (conv3d) or IODHW (conv_transpose3d), PyTorch's layouts in
// both; the output has x's layout. Called by the bindings in python/conv3d.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/workspace.h"
#include "kernels/gemm/gemm.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {

enum class Conv3dAlgo { automatic, implicit_gemm, vol2col, depthwise };

struct Conv3dParams {
  int64_t stride_d = 1, stride_h = 1, stride_w = 1;
  int64_t pad_front = 0, pad_back = 0, pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_d = 1, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  kernels::Activation activation = kernels::Activation::none;
  float negative_slope = 0.01f;
  bool ndhwc = false;
  Conv3dAlgo algo = Conv3dAlgo::automatic;
};

// Sizes of one 3-D convolution (forward: x -> output; transposed: the same names, with c_in/c_out
// the transposed op's own input/output channels).
struct Conv3dGeometry {
  int64_t n, c_in, d, h, w;                        // input
  int64_t c_out, kd, kh, kw;                       // weight
  int64_t od, oh, ow;                              // output
  int64_t icg, ocg;                                // channels per group
  int64_t volume() const { return d * h * w; }     // input elements per channel
  int64_t pixels() const { return od * oh * ow; }  // output elements per channel
  int64_t taps() const { return kd * kh * kw; }
  int64_t k() const { return icg * taps(); }  // GEMM reduction length per group
};

// Names accepted by conv3d's algo=, in the order cnnfast.conv3d_algorithms() lists them.
std::vector<std::string> conv3d_algorithms();
// Parses an algo= name; ValueError listing the choices otherwise.
Conv3dAlgo parse_conv3d_algo(const std::string& name);

// ValueError (prefixed by `op`, e.g. "conv3d: ") unless groups, stride and dilation are >= 1 and
// every pad >= 0: the checks conv3d and conv_transpose3d share.
void check_conv3d_params(const Conv3dParams& p, const std::string& op);

// Validates x, weight, bias (nullptr: none) and the parameters (ValueError naming the argument
// and the shapes) and returns the output shape in x's layout.

std::vector<int64_t> conv3d_output_shape(const TensorView& x, const TensorView& weight,
                                         const TensorView* bias, const Conv3dParams& p);
// out = act(conv3d(x, weight) + bias). x, weight, bias and out are C-contiguous; out has the
// shape conv3d_output_shape returned.
void conv3d(const TensorView& x, const TensorView& weight, const TensorView* bias,
            const Conv3dParams& p, float* out);

// The "depthwise" algorithm on NCDHW (one input channel per group, any channel multiplier):
// one depthwise volume-kernel call per output plane (ops/conv3d_depthwise.cpp).
void conv3d_depthwise_ncdhw(const float* x, const float* w, const float* bias,
                            const Conv3dGeometry& g, const Conv3dParams& p, float* y);

// conv_transpose3d: conv3d's parameters (padding = the forward convolution's, cropped from the
// output) plus output_padding (extra elements at the end of each output axis).
// For an NDHWC batch, runs ncdhw(x_image, one, y_image) on each image through NCDHW copies (one
// transposition each way; `one` is g with n = 1): the algorithms that exist only in NCDHW.
template <class Fn>
void through_ncdhw(const float* x, const Conv3dGeometry& g, float* y, Fn&& ncdhw) {
  Conv3dGeometry one = g;
  one.n = 1;
  // (DHW, C) -> (C, DHW), and (C, ODHW) -> (ODHW, C) back.
  AlignedBuffer buffer(sizeof(float) * size_t(g.c_in * g.volume() + g.c_out * g.pixels()));
  through_transposed(x, g.n, g.volume(), g.c_in, y, g.c_out, g.pixels(),
                     static_cast<float*>(buffer.data()),
                     [&](const float* x_t, float* y_t) { ncdhw(x_t, one, y_t); });
}

struct ConvTranspose3dParams {
  Conv3dParams conv;
  int64_t output_padding_d = 0, output_padding_h = 0, output_padding_w = 0;
};

// Validates x (N, C_in, D, H, W) or NDHWC, weight (C_in, C_out/groups, kd, kh, kw) and bias
// (C_out) and returns the output shape: (D - 1)*stride - pad_front - pad_back +
// dilation*(kd - 1) + output_padding + 1 per axis.
std::vector<int64_t> conv_transpose3d_output_shape(const TensorView& x, const TensorView& weight,
                                                   const TensorView* bias,
                                                   const ConvTranspose3dParams& p);
// y = act(conv_transpose3d(x, weight) + bias) by GEMM + a race-free col2vol gather
// (ops/conv_transpose3d.cpp).
void conv_transpose3d(const TensorView& x, const TensorView& weight, const TensorView* bias,
                      const ConvTranspose3dParams& p, float* y);

}  // namespace cnnfast::ops
