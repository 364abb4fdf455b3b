// cnnfast.conv_transpose2d / conv_transpose1d: the adjoint (Cᵀ) of conv2d. Called by the binding
// in python/conv_transpose2d.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {

enum class ConvTransposeAlgo { automatic, gemm_col2im, phase };

// conv2d's parameters (stride, begin/end padding cropped from the full output, dilation, groups,
// activation, layout) plus output_padding (extra rows/columns at the end of the output) and the
// algorithm (conv.algo is unused).
struct ConvTransposeParams {
  Conv2dParams conv;
  int64_t output_padding_h = 0, output_padding_w = 0;
  ConvTransposeAlgo algo = ConvTransposeAlgo::automatic;
};

// Names accepted by algo=, in the order cnnfast.conv_transpose2d_algorithms() lists them.
std::vector<std::string> conv_transpose2d_algorithms();
// Parses an algo= name; ValueError naming `op` and listing the choices otherwise.
ConvTransposeAlgo parse_conv_transpose2d_algo(const std::string& name, const char* op);

// Validates x (N, C_in, H, W) or NHWC, weight (C_in, C_out/groups, kh, kw) and bias (C_out) and
// returns the output shape: (H - 1)*stride - pad_top - pad_bottom + dilation*(kh - 1) +
// output_padding + 1 per axis. ValueError naming the argument and the shapes otherwise.
std::vector<int64_t> conv_transpose2d_output_shape(const TensorView& x, const TensorView& weight,
                                                   const TensorView* bias,
                                                   const ConvTransposeParams& p);

// y = act(conv_transpose2d(x, weight) + bias), written into y (the output shape, contiguous).
// "gemm_col2im": per image and group one GEMM makes the columns (every input pixel times every
// tap), then each output row gathers its taps' columns (no two threads write one output).
// "phase" (dilation 1): per stride phase, a dense stride-1 convolution of x with that phase's
// taps (conv2d's implicit GEMM, bias and activation in its epilogue), stored at stride steps.
void conv_transpose2d(const TensorView& x, const TensorView& weight, const TensorView* bias,
                      const ConvTransposeParams& p, float* y);

// The input index whose kernel tap i lands on output index o of one axis of a transposed
// convolution: (o + pad - i*dilation) / stride when that divides exactly and lies in [lo, hi);
// -1 otherwise. Shared by the 2-D and 3-D col2im gathers.
inline int64_t transposed_source(int64_t o, int64_t pad, int64_t i, int64_t dilation,
                                 int64_t stride, int64_t lo, int64_t hi) {
  const int64_t t = o + pad - i * dilation;
  if (t < 0 || t % stride) return -1;
  const int64_t in = t / stride;
  return in >= lo && in < hi ? in : -1;
}

}  // namespace cnnfast::ops
